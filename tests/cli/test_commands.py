"""The ``reid`` command table: built-in commands, commands plugged in by entry point, lazy imports."""

import ast
import subprocess
import sys
from pathlib import Path

import reid
from reid.cli import COMMANDS, build_parser, main

LIBRARY = Path(reid.__file__).parent
WEB_STACK = {"app", "fastapi", "starlette", "uvicorn"}


def _subcommands(parser):
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return set(action.choices)


def test_help_lists_the_built_in_commands_and_the_service_plugged_in_by_entry_point():
    assert _subcommands(build_parser()) == {*COMMANDS, "serve"}


def test_running_a_command_imports_only_that_command():
    probe = (
        "import sys; from reid.cli import build_parser; build_parser(['embed', '--help-me']); "
        "print(sorted(m for m in sys.modules if m.startswith(('reid.cli.', 'app'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['reid.cli.common', 'reid.cli.embed', 'reid.cli.options']"  # the shared helpers


def test_serve_comes_from_the_service_package(capsys):
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_the_library_never_imports_the_web_stack():
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(LIBRARY)}: {n}" for n in names if n.split(".")[0] in WEB_STACK]
    assert offenders == []
