"""Reading and writing weight files without ever executing code from them.

``.safetensors`` is the first-class format. PyTorch pickles (``.pth``, ``.pt``, ``.tar``, torchreid's
``model.pth.tar-60``) are read only through ``torch.load(weights_only=True)``: a pickle that needs to import
or call anything beyond tensors and plain containers is refused with :class:`UnsafeCheckpoint`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError

from reid.errors import CheckpointError, UnsafeCheckpoint

logger = logging.getLogger(__name__)

# Containers that training frameworks wrap a state dict in, tried in this order: torchreid and IBN-Net
# (`state_dict`), fast-reid and strong-baseline checkpoints (`model`), DeepSpeed-style (`module`).
WRAPPER_KEYS = ("state_dict", "model", "module")
DATA_PARALLEL_PREFIX = "module."

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80
_HASH_CHUNK = 1 << 20
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def _numpy_scalar_globals() -> list[Any]:
    """numpy scalars and dtypes, which torchreid stores as metadata (``rank1``).

    Rebuilding a numeric scalar runs no user code. numpy 1 and 2 pickles name the constructor by different
    module paths, so both are allowed.
    """
    scalar: Any = np.float32(0).__reduce__()[0]  # numpy's scalar constructor, wherever numpy keeps it
    dtypes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdg"]
    named = [(scalar, f"numpy.{core}.multiarray.scalar") for core in ("core", "_core")]
    return [scalar, *named, np.dtype, *dtypes]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a weight file, unwrapped (see :func:`unwrap_state_dict`), on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(len(_ZIP_MAGIC))
    if path.suffix == ".safetensors":
        raw: Any = _read_safetensors(path)
    elif head.startswith(_ZIP_MAGIC) or (head and head[0] == _PICKLE_PROTO):
        raw = _read_pickle(path)
    else:
        # No PyTorch signature: a safetensors file under another name, or not a weight file at all.
        try:
            raw = _read_safetensors(path)
        except CheckpointError:
            raise CheckpointError(f"{path} is neither a safetensors file nor a PyTorch checkpoint") from None
    return unwrap_state_dict(raw, path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read safetensors file {path}: {exc}") from exc


def _read_pickle(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpoint(f"refused to load {path}: {_refusal_reason(exc)}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: corrupt or truncated PyTorch file ({exc})") from exc


def _refusal_reason(exc: BaseException) -> str:
    """A one-line reason from torch's long weights-only message (the detail sits in the chained error)."""
    detail = str(exc.__context__ or exc)
    found = _GLOBAL_RE.search(detail) or _GLOBAL_RE.search(str(exc))
    if found:
        return (
            f"its pickle needs to import and run {found.group(1)}, which could execute arbitrary code. "
            "Only plain state dicts are accepted: re-save it with torch.save(model.state_dict(), ...) "
            "or convert it to .safetensors where it was trained"
        )
    reason = detail.strip().splitlines()[-1] if detail.strip() else "unsupported pickle content"
    return f"the weights-only unpickler rejected it ({reason}); only plain state dicts are accepted"


def unwrap_state_dict(obj: Any, path: str | os.PathLike[str] = "<checkpoint>") -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint and return its tensors.

    Descends through ``state_dict`` / ``model`` / ``module`` wrappers (optimizer state and epochs beside
    them are ignored), drops non-tensor entries, and strips a DataParallel ``module.`` prefix that every
    key carries.
    """
    while isinstance(obj, Mapping):
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} contains no tensors")
    skipped = len(obj) - len(tensors)
    if skipped:
        logger.debug("%s: ignored %d non-tensor entries", path, skipped)
    if all(k.startswith(DATA_PARALLEL_PREFIX) for k in tensors):
        tensors = {k[len(DATA_PARALLEL_PREFIX) :]: v for k, v in tensors.items()}
    return tensors


def write_safetensors(
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write tensors atomically: a temporary file in the same folder, renamed over ``path`` when complete."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        safetensors.torch.save_file(tensors, tmp, metadata=dict(metadata or {}))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
