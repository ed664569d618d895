"""The ``reid`` command.

Each sub-command lives in its own module under ``reid/cli/`` and exposes ``register(subparsers)``; that
function adds its parser and sets ``func`` (``Callable[[argparse.Namespace], int]``). Packages built on the
library add commands through the ``reid.commands`` entry point group (``name = "module:register"``): the
service's ``reid serve`` comes from ``app.cli`` that way, so the library never imports the service. Only the
module of the command being run is imported (all of them for ``reid --help``). Domain errors are turned
into a one-line ``error: ...`` message here and nowhere else.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from reid.errors import ReidError

COMMANDS: tuple[str, ...] = (
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
    "weights",
    "train",
)
PLUGIN_GROUP = "reid.commands"

Register = Callable[[Any], None]


def _registrars() -> dict[str, Callable[[], Register]]:
    """Command name → a loader of its ``register`` function (nothing imported yet)."""
    found: dict[str, Callable[[], Register]] = {ep.name: ep.load for ep in entry_points(group=PLUGIN_GROUP)}
    for name in COMMANDS:
        found[name] = functools.partial(_builtin, name)
    return found


def _builtin(name: str) -> Register:
    register: Register = importlib.import_module(f"reid.cli.{name}").register
    return register


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, with only the command it names (every command when it names none)."""
    parser = argparse.ArgumentParser(
        prog="reid", description="Person re-identification embeddings and search."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    registrars = _registrars()
    named = next((arg for arg in argv or () if not arg.startswith("-")), None)
    for name, load in registrars.items():
        if named not in registrars or name == named:
            load()(sub)
    return parser


def command_words(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The (sub-)command names ``args`` chose, outermost first: ``["gallery", "delete"]``. Only names,
    never a flag's value (a filter value may identify a person)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return [name, *command_words(action.choices[name], args)]
    return []


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that a command that sets ``trailing_ints`` (the name of its list of
    integer positionals) also takes the integers given after its flags: argparse ends a subcommand's
    positionals at its first flag, so ``reid gallery delete G --backend milvus 1 2`` would refuse 1 and 2."""
    args, extra = parser.parse_known_args(argv)
    name = getattr(args, "trailing_ints", None)
    if extra and name and all(word.isdigit() for word in extra):
        setattr(args, name, [*getattr(args, name), *map(int, extra)])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parse(parser, argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imported here: the gallery package (numpy) is not needed for `reid --help` and parse errors.
    from reid.gallery.audit import set_process_actor

    set_process_actor(" ".join([parser.prog, *command_words(parser, args)]))  # the audit log's "via"
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
