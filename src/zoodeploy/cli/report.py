"""`zoodeploy report`: report.md and pareto.png from the figures in the card."""

from __future__ import annotations

from typing import Annotated

import typer

from zoodeploy.bench.report import write_report
from zoodeploy.cli.common import ArtifactArg, JsonFlag, console, print_json


def report(artifact: ArtifactArg, batch: Annotated[int | None, typer.Option(
        "--batch", help="Batch size to plot (default: the build's, else the smallest measured).")] = None,
           json: JsonFlag = False) -> None:
    """Write ARTIFACT/report.md (accuracy and latency tables) and ARTIFACT/pareto.png."""
    md, png = write_report(artifact, batch)
    if json:
        print_json({"report": str(md), "pareto": str(png)})
    else:
        console.print(f"wrote {md} and {png}")
