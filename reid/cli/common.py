"""Options shared by the sub-commands: running the model, and where the gallery lives."""

from __future__ import annotations

import argparse
from pathlib import Path

from reid.engine import RUNTIME_CHOICES, EngineOptions, Extractor, default_weights, load_extractor
from reid.errors import ConfigError
from reid.gallery import BACKENDS, GallerySpec


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        default=None,
        help="checkpoint or exported artifact (.onnx, OpenVINO .xml, TensorRT .ep), a folder holding one, "
        "a zoo name (reid weights list) or an https URL (default: ./weights/ when it exists)",
    )
    p.add_argument(
        "--runtime",
        default="auto",
        choices=RUNTIME_CHOICES,
        help="auto (default): from the artifact's suffix, torch for a checkpoint",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--batch-size", type=int, default=32, help="images per forward")
    p.add_argument("--flip", action="store_true", help="flip test-time augmentation")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster runs)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")


def engine_options_from_args(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(
        runtime=args.runtime,
        device=args.device,
        dtype=args.dtype,
        channels_last=args.channels_last,
        compile=args.compile,
        flip=args.flip,
        max_batch_size=args.batch_size,
    )


def weights_from_args(args: argparse.Namespace) -> str | None:
    """``--weights`` (a path, zoo name or URL), else ``./weights/`` when it exists, else ``None`` (random
    weights)."""
    if args.weights is not None:
        return str(args.weights)
    default = default_weights()
    return str(default) if default is not None else None


def extractor_from_args(args: argparse.Namespace) -> Extractor:
    return load_extractor(weights_from_args(args), options=engine_options_from_args(args))


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="faiss",
        help="gallery store: faiss (a local folder; default) or milvus (a server URI or milvus-lite file)",
    )
    p.add_argument("--collection", help="Milvus collection (default reid_gallery)")


def gallery_spec(
    location: str, args: argparse.Namespace, *, existing: bool, index: str | None = None
) -> GallerySpec:
    """The gallery named on the command line; ``existing``: a FAISS folder must already be there;
    ``index``: the index of a gallery this command may create."""
    spec = GallerySpec(location, backend=args.backend, collection=args.collection, index=index)
    if existing and spec.backend == "faiss" and not Path(location).is_dir():
        raise ConfigError(f"{location} is not a directory")
    return spec
