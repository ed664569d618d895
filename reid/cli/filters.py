"""Search filter flags, derived from :class:`reid.gallery.Filters`: one flag per field, named after it
(``cameras_in`` is ``--cameras-in``), so the CLI speaks the library's and the HTTP API's vocabulary."""

from __future__ import annotations

import argparse
from dataclasses import fields

from reid.gallery import Filters

# Names the flags had before they followed the Filters fields: still accepted, no longer shown.
OLD_FLAGS = {"cameras_in": "--camera-in", "cameras_not_in": "--camera-not-in", "person_ids": "--person"}


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("filters (all that are given must hold)")
    for spec in fields(Filters):
        value = spec.metadata["value"]
        parse = {"dest": spec.name, "type": value, "nargs": "+" if spec.metadata["many"] else None}
        flag = "--" + spec.name.replace("_", "-")
        group.add_argument(
            flag, metavar="UNIX_S" if value is float else "ID", help=spec.metadata["help"], **parse
        )
        if spec.name in OLD_FLAGS:
            group.add_argument(OLD_FLAGS[spec.name], help=argparse.SUPPRESS, **parse)


def filters_from_args(args: argparse.Namespace) -> Filters:
    return Filters(**{spec.name: getattr(args, spec.name) for spec in fields(Filters)})
