"""Domain errors of the reid library.

Every error a caller can provoke is a subclass of :class:`ReidError` with a stable ``code``. The web layer
(``app/errors.py``) and the CLI (``reid/cli``) translate them in one place each; nothing in ``reid/``
knows about HTTP.
"""

from __future__ import annotations


class ReidError(Exception):
    """Base class: a clear, user-facing problem (bad input, bad file, bad configuration)."""

    code = "reid_error"


class ConfigError(ReidError, ValueError):
    """An impossible model/engine/gallery configuration, caught at construction time."""

    code = "invalid_config"


class UnknownModel(ConfigError):
    """A preset name that is not in the registry."""

    code = "unknown_model"


class CheckpointError(ReidError):
    """A checkpoint that cannot be read or does not match the model (missing/unexpected keys, shapes)."""

    code = "invalid_checkpoint"


class UnsafeCheckpoint(CheckpointError):
    """A pickle that would need to execute code to load: refused, never executed."""

    code = "unsafe_checkpoint"


class InvalidImage(ReidError):
    """Bytes that do not decode to an image (corrupt, truncated, empty)."""

    code = "invalid_image"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        super().__init__(f"image {index}: {message}" if index is not None else message)


class UnsupportedImage(InvalidImage):
    """A readable file in a format we do not accept."""

    code = "unsupported_image"


class ImageTooLarge(InvalidImage):
    """An image whose pixel count exceeds the configured limit (decompression-bomb guard)."""

    code = "image_too_large"


class TooManyImages(ReidError):
    """More images in one request than the configured maximum."""

    code = "too_many_images"


class ModelMismatch(ReidError):
    """Embeddings from one model offered to a gallery built with another (fingerprint or dim differ)."""

    code = "model_mismatch"


class GalleryError(ReidError):
    """A gallery that cannot be opened or written (corrupt files, bad parameters)."""

    code = "gallery_error"


class NotFound(ReidError, KeyError):
    """A gallery id or key that does not exist."""

    code = "not_found"

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "not found"


class QueueFull(ReidError):
    """The inference queue is full: the caller should retry later."""

    code = "queue_full"

    def __init__(self, message: str = "inference queue is full", *, retry_after_s: float = 1.0) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class NotReady(ReidError):
    """The engine is not loaded or warmed up yet."""

    code = "not_ready"


class GalleryUnavailable(NotReady):
    """A gallery server (Milvus) that cannot be reached or refuses work for now: retry later."""

    code = "gallery_unavailable"


class UnknownWeights(ConfigError):
    """A weights value that is neither a file, a folder, a zoo name nor a URL."""

    code = "unknown_weights"


class InsecureURL(ConfigError):
    """A weights URL that is not https (plain http is allowed to loopback addresses only)."""

    code = "insecure_url"


class DownloadError(ReidError):
    """A download that failed: unreachable server, HTTP error, or a transfer cut short."""

    code = "download_failed"


class HashMismatch(ReidError):
    """Bytes whose SHA-256 is not the one the zoo lists or the cache recorded at the first download."""

    code = "hash_mismatch"

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class OfflineMissing(ReidError):
    """Offline mode (``REID_OFFLINE``) and the requested weights are not in the cache."""

    code = "offline_missing"


class ExportError(ReidError):
    """An export that cannot be written, or whose artifact fails its verification against eager fp32."""

    code = "export_failed"
