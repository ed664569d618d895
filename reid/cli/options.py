"""Command-line flags derived from an option dataclass: each field declares its flag once.

A field ``batch_size: int`` becomes ``--batch-size N``; ``bool`` fields get ``--x/--no-x``; ``Literal``
fields get their choices; ``tuple[int, ...]`` fields take several values. Flags default to ``None`` so
that only the flags a user gives override the values from presets and config files.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Literal, get_args, get_origin


def _scalar(kind: Any) -> dict[str, Any]:
    if get_origin(kind) is Literal:
        return {"choices": list(get_args(kind))}
    if kind in (int, float):
        return {"type": kind}
    return {}


def add_dataclass_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type[Any],
    *,
    helps: dict[str, str] | None = None,
    skip: frozenset[str] = frozenset(),
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """Add a flag per field of ``cls`` (except ``skip``); returns the field names that got one. The help
    text comes from ``helps`` or the field's ``metadata["help"]``; ``aliases`` adds other flag names."""
    hints = typing.get_type_hints(cls)
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        options: dict[str, Any] = {"default": None, "dest": f.name}
        args = [a for a in get_args(kind) if a is not type(None)]
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif get_origin(kind) is tuple:
            options |= {"nargs": "+", **_scalar(args[0])}
        else:
            options |= _scalar(args[0] if get_origin(kind) in (typing.Union, type(int | None)) else kind)
            options["metavar"] = f.name.upper() if "choices" not in options else None
        default = f.default if f.default is not dataclasses.MISSING else None
        if kind is bool:
            default = "on" if default else "off"
        text = (helps or {}).get(f.name) or f.metadata.get("help", "")
        options["help"] = f"{text} (default {default})".strip() if text else f"default {default}"
        parser.add_argument("--" + f.name.replace("_", "-"), *(aliases or {}).get(f.name, ()), **options)
        names.append(f.name)
    return names


def given_flags(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The flags among ``names`` that the user gave, as ``{field: value}``."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
