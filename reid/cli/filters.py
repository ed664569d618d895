"""Search filter flags, derived from :class:`reid.gallery.Filters`: one flag per field, named after it
(``cameras_in`` is ``--cameras-in``), so the CLI speaks the library's and the HTTP API's vocabulary."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import Field, fields
from typing import Any

from reid.errors import ConfigError
from reid.gallery import Filters
from reid.gallery.filters import metadata_condition

# Names the flags had before they followed the Filters fields: still accepted, no longer shown.
OLD_FLAGS = {"cameras_in": "--camera-in", "cameras_not_in": "--camera-not-in", "person_ids": "--person"}
# What a flag's value is, by its converter; a text field is named by its last word (key_prefix: PREFIX).
METAVARS: dict[Callable[[str], Any], str] = {int: "ID", float: "UNIX_S", metadata_condition: "KEY=VALUE"}


def _metavar(spec: Field[Any]) -> str:
    return METAVARS.get(spec.metadata["value"], spec.name.rsplit("_", 1)[-1].upper())


def _flag_type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """``convert`` for argparse: a :class:`ConfigError` becomes a usage error that keeps its message
    (argparse would print only "invalid ... value")."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parse.__name__ = convert.__name__  # argparse names the type in its own messages ("invalid int value")
    return parse


def add_filter_arguments(
    p: argparse.ArgumentParser, title: str = "filters (all that are given must hold)"
) -> None:
    group = p.add_argument_group(title)
    for spec in fields(Filters):
        parse: dict[str, Any] = {
            "dest": spec.name,
            "type": _flag_type(spec.metadata["value"]),
            "nargs": "+" if spec.metadata["many"] else None,
            "metavar": _metavar(spec),
        }
        flag = "--" + spec.name.replace("_", "-")
        group.add_argument(flag, help=spec.metadata["help"], **parse)
        if spec.name in OLD_FLAGS:
            group.add_argument(OLD_FLAGS[spec.name], help=argparse.SUPPRESS, **parse)


def filters_from_args(args: argparse.Namespace) -> Filters:
    values = {spec.name: getattr(args, spec.name) for spec in fields(Filters)}
    if values["metadata"] is not None:  # KEY=VALUE flags arrive as pairs
        values["metadata"] = dict(values["metadata"])
    return Filters(**values)
