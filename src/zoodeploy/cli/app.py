"""The `zoodeploy` command: wires the command modules, turns errors into one line.

Each command lives in its own module; `zoodeploy NAME ...` imports only NAME's module, so a
command that needs no torch starts in a fraction of a second. `--help` imports them all.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

from zoodeploy.errors import ZoodeployError

# command -> (module under zoodeploy.cli, attribute, whether it is a group of subcommands)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "models": ("models", "app", True),
    "train": ("train", "train", False),
    "export": ("export", "export", False),
    "optimize": ("optimize", "optimize", False),
    "evaluate": ("evaluate", "evaluate", False),
    "bench": ("bench", "bench", False),
    "check": ("check", "check", False),
    "report": ("report", "report", False),
    "build": ("build", "build", False),
    "compile": ("compile", "compile_cmd", False),
    "package": ("package", "package", False),
    "verify-bundle": ("package", "verify_bundle", False),
    "bento": ("bento", "app", True),
    "predict": ("predict", "predict", False),
}


def _no_options() -> None:
    pass


def make_app(only: str | None = None) -> typer.Typer:
    """The CLI with every command, or with just `only` (what `main` runs for one command)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="Trained CNN zoo models to verified, fast ONNX / TensorRT / BentoML deployments.")
    app.callback()(_no_options)  # a group even when it holds one command
    for name, (module, attr, group) in COMMANDS.items():
        if only is not None and name != only:
            continue
        obj = getattr(importlib.import_module(f"zoodeploy.cli.{module}"), attr)
        if group:
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)
    return app


def run(args: Sequence[str] | None = None) -> NoReturn:
    """`zoodeploy ARGS` (None: sys.argv[1:]) in this process; always exits (SystemExit).

    A ZoodeployError becomes one line on stderr and exit 1, Ctrl-C exit 130. `main` runs this,
    and so do the tests that check the CLI in-process (tests/cli_support.py), so both paths
    handle errors in this one place.
    """
    args = sys.argv[1:] if args is None else [str(a) for a in args]
    first = args[0] if args else None
    app = make_app(first if first in COMMANDS else None)
    try:  # standalone: usage errors print typer's message and exit 2, typer.Exit keeps its code
        app(args, prog_name="zoodeploy")
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except ZoodeployError as e:
        print(error_line(e), file=sys.stderr)
        sys.exit(1)
    sys.exit(0)  # not reached: a standalone click command exits itself


def error_line(e: ZoodeployError) -> str:
    """The one line a refusal prints: the message with its whitespace folded."""
    return "error: " + " ".join(str(e).split())


def main() -> None:
    run()

if __name__ == "__main__":
    main()
