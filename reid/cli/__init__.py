"""The ``reid`` command.

Each sub-command lives in its own module under ``reid/cli/`` and exposes ``register(subparsers)``; that
function adds its parser and sets ``func`` (``Callable[[argparse.Namespace], int]``). Domain errors are
turned into a one-line ``error: ...`` message here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from reid.errors import ReidError

# Sub-command modules, imported lazily so `reid --help` stays fast and a missing optional dependency
# only breaks the command that needs it.
COMMANDS: tuple[str, ...] = (
    "serve",
    "embed",
    "search",
    "index",
    "gallery",
    "eval",
    "convert",
    "export",
    "models",
    "bench",
    "synth",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reid", description="Person re-identification embeddings and search."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"reid.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except ReidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
