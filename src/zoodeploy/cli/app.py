"""The `zoodeploy` command: wires the command modules, turns errors into one line."""

from __future__ import annotations

import sys

import click
import typer

from zoodeploy.errors import ZoodeployError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Trained CNN zoo models to verified, fast ONNX / TensorRT / BentoML deployments.")

# --- command wiring (one line per command module) ---
from zoodeploy.cli import models as _models  # noqa: E402
app.add_typer(_models.app, name="models")
from zoodeploy.cli import train as _train  # noqa: E402
app.command("train")(_train.train)
from zoodeploy.cli import evaluate as _evaluate  # noqa: E402
app.command("evaluate")(_evaluate.evaluate)
from zoodeploy.cli import bench as _bench  # noqa: E402
app.command("bench")(_bench.bench)
from zoodeploy.cli import check as _check  # noqa: E402
app.command("check")(_check.check)
from zoodeploy.cli import report as _report  # noqa: E402
app.command("report")(_report.report)
from zoodeploy.cli import build as _build  # noqa: E402
app.command("build")(_build.build)
from zoodeploy.cli import package as _package  # noqa: E402
app.command("package")(_package.package)
app.command("verify-bundle")(_package.verify_bundle)
from zoodeploy.cli import compile as _compile  # noqa: E402
app.command("compile")(_compile.compile_cmd)
from zoodeploy.cli import bento as _bento  # noqa: E402
app.add_typer(_bento.app, name="bento")
from zoodeploy.cli import optimize as _optimize  # noqa: E402
app.command("optimize")(_optimize.optimize)
from zoodeploy.cli import export as _export  # noqa: E402
app.command("export")(_export.export)
# --- end of command wiring ---


def main() -> None:
    try:
        rc = app(standalone_mode=False)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except ZoodeployError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
