"""Checkpoint loading: any supported framework's file → a strictly loaded ``ReIDModel`` + its manifest.

Sources: ``reid`` (our layout), ``torchvision``, ``ibn-net``, ``fast-reid``, ``strong-baseline``,
``torchreid``. Files: ``.safetensors``, or PyTorch pickles read with ``weights_only=True`` only.
"""

from reid.checkpoints.fingerprint import model_fingerprint
from reid.checkpoints.infer import default_preprocess, infer_config
from reid.checkpoints.io import read_state_dict, sha256_file, unwrap_state_dict, write_safetensors
from reid.checkpoints.loader import (
    LoadedModel,
    convert_checkpoint,
    export_safetensors,
    load_checkpoint,
    record_thresholds,
    write_checkpoint_manifest,
)
from reid.checkpoints.manifest import Manifest, manifest_path, read_manifest, write_manifest
from reid.checkpoints.sources import SOURCES, Remapped, detect_source, remap
from reid.checkpoints.strict import LoadReport, load_into

__all__ = [
    "SOURCES",
    "LoadReport",
    "LoadedModel",
    "Manifest",
    "Remapped",
    "convert_checkpoint",
    "default_preprocess",
    "detect_source",
    "export_safetensors",
    "infer_config",
    "load_checkpoint",
    "load_into",
    "manifest_path",
    "model_fingerprint",
    "read_manifest",
    "read_state_dict",
    "record_thresholds",
    "remap",
    "sha256_file",
    "unwrap_state_dict",
    "write_checkpoint_manifest",
    "write_manifest",
    "write_safetensors",
]
