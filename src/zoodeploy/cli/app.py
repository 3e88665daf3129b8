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
