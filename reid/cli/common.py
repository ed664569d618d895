"""Options shared by the sub-commands: running the model, and where the gallery lives."""

from __future__ import annotations

import argparse
from pathlib import Path

from reid.cli.options import add_dataclass_flags, given_flags
from reid.engine import EngineOptions, Extractor, default_weights, load_extractor
from reid.errors import ConfigError
from reid.gallery import BACKENDS, GallerySpec


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        default=None,
        help="checkpoint or exported artifact (.onnx, OpenVINO .xml, TensorRT .ep), a folder holding one, "
        "a zoo name (reid weights list) or an https URL (default: ./weights/ when it exists)",
    )
    engine = p.add_argument_group("engine options (the service's REID_* settings of the same names)")
    names = add_dataclass_flags(engine, EngineOptions, aliases={"max_batch_size": ("--batch-size",)})
    p.set_defaults(engine_flags=names)


def engine_options_from_args(args: argparse.Namespace) -> EngineOptions:
    """The options the flags give; every other one keeps its :class:`EngineOptions` default."""
    return EngineOptions(**given_flags(args, args.engine_flags))


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
