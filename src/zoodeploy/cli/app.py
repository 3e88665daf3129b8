"""The `zoodeploy` command: wires the command modules, turns errors into one line.

Each command lives in its own module; `zoodeploy NAME ...` imports only NAME's module, so a
command that needs no torch starts in a fraction of a second. `--help` imports them all.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, NoReturn

import typer

from zoodeploy.errors import ZoodeployError

# command -> (module under zoodeploy.cli, attribute, whether it is a group of subcommands, one line of help)
# The line is what `zoodeploy --help` lists: it imports no command module (no torch, no onnxruntime);
# tests/cli/test_fast_start.py checks each line against the command's own help.
COMMANDS: dict[str, tuple[str, str, bool, str]] = {
    "models": ("models", "app", True, "The model zoo: list architectures, measure one."),
    "train": ("train", "train", False, "Train NAME on DATA and write checkpoint.pt + card.json into OUT."),
    "export": ("export", "export", False,
               "Export to ONNX (torch.onnx dynamo exporter), check it and validate it against PyTorch."),
    "optimize": ("optimize", "optimize", False,
                 "Make optimized variants of ARTIFACT (default passes: fuse,int8), each with accuracy and drift."),
    "evaluate": ("evaluate", "evaluate", False,
                 "Top-1, top-5, drop vs fp32, agreement and max logit error of each variant (test split only)."),
    "bench": ("bench", "bench", False,
              "Latency p50/p90/p99, throughput and speed-up over PyTorch eager; recorded in the card."),
    "check": ("check", "check", False,
              "Fail when a variant drifts past --max-drop or got slower, relative to fp32, than its baseline."),
    "report": ("report", "report", False,
               "Write ARTIFACT/report.md (accuracy and latency tables) and ARTIFACT/pareto.png."),
    "build": ("build", "build", False, "Build NAME into OUT and select the best variant within --max-drop."),
    "compile": ("compile", "compile_cmd", False, "Build, verify against PyTorch, and record a GPU variant "
                                                 "(trt-<precision> / torch-trt-<precision>)."),
    "package": ("package", "package", False, "Package one variant of ARTIFACT: an edge bundle, a Triton model "
                                             "repository or a KServe deployment."),
    "verify-bundle": ("package", "verify_bundle", False, "Check every file of BUNDLE against its manifest, run its "
                                                         "samples and compare with the expected outputs."),
    "bento": ("bento", "app", True,
              "Serving with BentoML: save artifacts to the model store, write sample requests."),
    "predict": ("predict", "predict", False, "Predict every image INPUTS name with one variant of ARTIFACT: "
                                             "one row per image, unreadable files as error rows."),
    "conform": ("conform", "conform_cmd", False,
                "The same canary images through every way ARTIFACT is served; exit 1 when one disagrees with the runner."),
}


def _print_version(value: bool) -> None:
    if value:
        from zoodeploy import __version__
        typer.echo(f"zoodeploy {__version__}")
        raise typer.Exit()


def _no_options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print zoodeploy's version and exit.")] = False,
) -> None:
    pass


def short_help(name: str) -> str:
    """The line `zoodeploy --help` lists for command `name`."""
    return COMMANDS[name][3]


def make_app(only: str | None = None) -> typer.Typer:
    """The CLI with just command `only` (what `main` runs for one command), or, for `zoodeploy --help`
    and a mistyped command, every command's name and one line, without importing any of them."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="Trained CNN zoo models to verified, fast ONNX / TensorRT / BentoML deployments.")
    app.callback()(_no_options)  # a group even when it holds one command
    for name, (module, attr, group, _) in COMMANDS.items():
        if only is None:
            app.command(name, help=short_help(name), add_help_option=False)(_no_options_stub)
        elif name == only:
            obj = getattr(importlib.import_module(f"zoodeploy.cli.{module}"), attr)
            if group:
                app.add_typer(obj, name=name)
            else:
                app.command(name)(obj)
    return app


def _no_options_stub() -> None:
    """Never run: `run` builds the app with the real command when one is named."""


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
    except OSError as e:  # a full disk, a quota, a read-only mount, a folder we may not write: one line
        print(os_error_line(e), file=sys.stderr)
        sys.exit(1)
    sys.exit(0)  # not reached: a standalone click command exits itself


def error_line(e: ZoodeployError) -> str:
    """The one line a refusal prints: the message with its whitespace folded."""
    return "error: " + " ".join(str(e).split())


def os_error_line(e: OSError) -> str:
    """An OSError the library did not expect as one line: what failed, on which file, and what to do."""
    where = f" ({e.filename})" if e.filename else ""
    return (f"error: {e.strerror or type(e).__name__}{where}; the command stopped: free some space or "
            "choose a writable location, then run it again")


def main() -> None:
    run()

if __name__ == "__main__":
    main()
