"""A ``--weights`` / ``REID_WEIGHTS`` value → a local checkpoint: a file or folder as given, a zoo name or
an https URL downloaded into the cache, verified, and described by a manifest.

The manifest written beside a download carries the zoo's facts (input size, head and stem details), so
every later load of the cached file — by name, URL or path — rebuilds the model the zoo describes rather
than what the keys alone suggest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid.checkpoints import Manifest, load_checkpoint, model_fingerprint, read_manifest, write_manifest
from reid.errors import CheckpointError
from reid.zoo.cache import (
    Expected,
    ensure_file,
    entry_dir,
    folder_lock,
    offline_missing,
    read_record,
    sha256_of,
    url_dir,
)
from reid.zoo.catalog import ZooEntry, entry_for_url, get_entry, load_zoo, looks_like_name, url_file_name
from reid.zoo.download import check_url
from reid.zoo.options import ZooOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsOrigin:
    """Where downloaded weights came from: the zoo name (``None`` for a URL outside the zoo), the URL,
    the file's SHA-256 and the published metrics."""

    name: str | None
    url: str
    sha256: str
    dataset: str = ""
    metrics: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "sha256": self.sha256,
            "dataset": self.dataset or None,
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True)
class ResolvedWeights:
    """A local file or folder, and its origin when it was resolved from a zoo name or a URL."""

    path: Path
    origin: WeightsOrigin | None = None


def resolve_weights(
    value: str | os.PathLike[str], options: ZooOptions | None = None, *, progress: bool = True
) -> ResolvedWeights:
    """Turn ``value`` into a local path.

    In this order: a URL (``scheme://``; https, or http to loopback) is downloaded; an existing file or
    folder is used as is; a zoo name (``reid weights list``) is downloaded. Anything else comes back as a
    path for the caller to report missing, except a name in a zoo namespace, which gets
    :class:`UnknownWeights` with suggestions. ``options``: ``None`` reads ``REID_HOME``/``REID_OFFLINE``/
    ``REID_ZOO_FILE`` from the environment.
    """
    options = options if options is not None else ZooOptions.from_env()
    text = os.fspath(value)
    if "://" in text:
        return pull_url(text, options, progress=progress)
    if Path(text).exists():
        return ResolvedWeights(Path(text))
    zoo = load_zoo(options.zoo_file)
    namespaces = {name.split("/", 1)[0] for name in zoo}
    if text in zoo or (looks_like_name(text) and text.split("/", 1)[0] in namespaces):
        return pull(get_entry(zoo, text), options, progress=progress)
    return ResolvedWeights(Path(text))


def pull_url(url: str, options: ZooOptions, *, progress: bool = True) -> ResolvedWeights:
    """Download ``url`` (or find it in the cache); a URL of the zoo is treated as its entry."""
    check_url(url)
    entry = entry_for_url(load_zoo(options.zoo_file), url)
    if entry is not None:
        return pull(entry, options, progress=progress)
    path = url_dir(options.cache_dir, url) / url_file_name(url)
    return _fetch(url, path, None, options, progress=progress)


def pull(entry: ZooEntry, options: ZooOptions, *, progress: bool = True) -> ResolvedWeights:
    """Download the zoo entry (or find it in the cache), verified and described by a manifest."""
    path = entry_dir(options.cache_dir, entry.name) / entry.file_name
    return _fetch(entry.url, path, entry, options, progress=progress)


def _fetch(
    url: str, path: Path, entry: ZooEntry | None, options: ZooOptions, *, progress: bool
) -> ResolvedWeights:
    what = entry.name if entry is not None else url
    expected = Expected(entry.sha256, entry.sha256_prefix) if entry is not None else Expected()
    sha256 = _cached(path, entry, url, expected, what)
    if sha256 is None and options.offline and not path.is_file():
        raise offline_missing(path, what)  # before the lock, which would create the folder
    if sha256 is None:
        # Something to write (the file, its record or its manifest): one process at a time.
        with folder_lock(path.parent, what):
            sha256 = ensure_file(
                url, path, expected=expected, offline=options.offline, what=what, progress=progress
            )
            _ensure_manifest(path, sha256, entry, url)
    origin = WeightsOrigin(
        name=entry.name if entry is not None else None,
        url=url,
        sha256=sha256,
        dataset=entry.dataset if entry is not None else "",
        metrics=entry.metrics if entry is not None else (),
    )
    return ResolvedWeights(path, origin)


def _cached(path: Path, entry: ZooEntry | None, url: str, expected: Expected, what: str) -> str | None:
    """The verified hash of a complete cache folder, read without writing (read-only caches, e.g. a volume
    pre-pulled into an image); ``None`` when something is missing or out of date."""
    if not path.is_file() or read_record(path) is None:
        return None
    try:
        manifest = read_manifest(path)
    except CheckpointError:
        return None
    if manifest is None or not _manifest_current(manifest, entry, url):
        return None
    sha256 = sha256_of(path)
    if manifest.sha256 != sha256:
        return None
    expected.check(sha256, what)
    recorded = read_record(path)
    if recorded != sha256:
        return None  # the locked path reports the mismatch with both hashes
    return sha256


def _manifest_current(manifest: Manifest, entry: ZooEntry | None, url: str) -> bool:
    """Whether ``manifest`` states the zoo's present facts (the zoo file may have changed since)."""
    if manifest.url != url or manifest.zoo != (entry.name if entry is not None else ""):
        return False
    if entry is None:
        return True
    model = manifest.model
    return (
        (manifest.preprocess.height, manifest.preprocess.width) == entry.input_size
        and manifest.source == entry.source
        and model.backbone_name == entry.architecture
        and entry.neck_feat in (None, model.neck_feat)
        and entry.stem_pool in (None, model.backbone.stem_pool)
    )


def _ensure_manifest(path: Path, sha256: str, entry: ZooEntry | None, url: str) -> Manifest:
    """Load the file through the strict loader once and write its manifest, with the zoo's facts."""
    try:
        existing = read_manifest(path)
    except CheckpointError as exc:
        logger.warning("rewriting an invalid manifest: %s", exc)
        existing = None
    if existing is not None and existing.sha256 == sha256 and _manifest_current(existing, entry, url):
        return existing
    loaded = load_checkpoint(
        path,
        source=entry.source if entry is not None else "auto",
        input_size=entry.input_size if entry is not None else None,
        use_manifest=False,
    )
    config = loaded.config
    if entry is not None:
        if config.backbone_name != entry.architecture:
            raise CheckpointError(
                f"{entry.name}: the downloaded file holds a {config.backbone_name}, the zoo lists a "
                f"{entry.architecture}; the zoo entry or the published file is wrong"
            )
        config = entry.apply(config)
    fingerprint = (
        loaded.fingerprint
        if config == loaded.config
        else model_fingerprint(config, loaded.preprocess, loaded.model.state_dict())
    )
    notes = f"downloaded from {url}" + (f" (zoo {entry.name})" if entry is not None else "")
    manifest = dataclasses.replace(
        loaded.describe(f"{notes}; {loaded.summary()}"),
        model=config,
        fingerprint=fingerprint,
        zoo=entry.name if entry is not None else "",
        url=url,
    )
    write_manifest(path, manifest)
    logger.info("%s: %s, %d-d, %s", path, config.backbone_name, manifest.embedding_dim, fingerprint)
    return manifest
