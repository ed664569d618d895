"""`reid serve`: run the HTTP service (``app.main:serve_app``) with uvicorn.

The command lives with the service, not in the library: ``reid`` finds it through the ``reid.commands``
entry point (pyproject.toml), so ``reid/`` never imports ``app``. Every service setting has a flag
generated from :class:`app.settings.Settings` (``--max-batch-size`` for ``REID_MAX_BATCH_SIZE``...). Flags
are written to the environment, which uvicorn's worker processes inherit, so each worker builds the same
settings. The API key is read from ``REID_API_KEY`` only, so it never shows in the process list.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from app.settings import Settings
from reid.errors import ConfigError

FACTORY = "app.main:serve_app"  # an import string: uvicorn's worker processes import it themselves
PROTOCOL = "app.server:NoDelayH11Protocol"
_ENV_ONLY = frozenset({"api_key", "api_keys"})  # secrets never go on the command line


def _setting_flags() -> dict[str, FieldInfo]:
    """Settings that get a flag: name → pydantic field info."""
    return {name: f for name, f in Settings.model_fields.items() if name not in _ENV_ONLY}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        allow_abbrev=False,  # --api-key must not pass as an abbreviation of --api-key-file
        help="run the HTTP service",
        description="Run the HTTP service. Each setting may also come from its REID_<NAME> environment "
        "variable; a flag wins over the variable. REID_API_KEY (environment only) protects gallery writes.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="processes; each loads its own copy of the model")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    settings = p.add_argument_group("service settings")
    for name, field in _setting_flags().items():
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description} (env REID_{name.upper()}, default {field.default})"
        if field.annotation is bool:
            settings.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            settings.add_argument(flag, default=None, metavar=name.upper(), help=help_text)
    p.set_defaults(func=run)


def _env_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def apply_overrides(args: argparse.Namespace) -> Settings:
    """Write the given flags to ``REID_*`` variables; returns the settings every worker will build."""
    env = {
        f"REID_{name.upper()}": _env_value(getattr(args, name))
        for name in _setting_flags()
        if getattr(args, name, None) is not None
    }
    os.environ.update(env)
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(f"invalid service settings: {exc}") from None


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    settings = apply_overrides(args)
    gallery = settings.gallery_spec()
    if args.workers > 1 and gallery is not None and not (gallery.backend == "milvus" and gallery.is_remote):
        # A local gallery has one writer: a second process could not open it. One worker already batches
        # every request onto the model; more workers only help without a gallery or with a Milvus server.
        raise ConfigError(
            f"--workers {args.workers} needs a Milvus server gallery or --gallery-dir '' (no gallery): "
            f"the gallery {gallery} can be open in one process only"
        )
    uvicorn.run(
        FACTORY,
        factory=True,
        http=PROTOCOL,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0
