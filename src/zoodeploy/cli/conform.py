"""`zoodeploy conform`: the same canary images through every way out; one table; exit 1 on a disagreement."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from zoodeploy.cli.common import ArtifactArg, JsonFlag, console, print_json
from zoodeploy.conform import Options, check, conform

stdout = Console()


def conform_cmd(
    artifact: ArtifactArg,
    images: Annotated[Path | None, typer.Option(
        help="Folder of canary images (default: held-out test images of the card's data, as PNG).")] = None,
    variant: Annotated[str, typer.Option(
        help="Variant to check: `selected` (the card's pick) or a name.")] = "selected",
    serve: Annotated[str, typer.Option(
        help="`local` (default): start `bentoml serve` of ARTIFACT here for the check; a URL: a running one; "
             "`none`: no server. Adds /classify and /v2.")] = "local",
    triton: Annotated[str | None, typer.Option(
        help="host:port of a running Triton on ARTIFACT's `--format triton` repository: adds tensor and, "
             "where `--input image` made it, image-bytes input.")] = None,
    ways: Annotated[str | None, typer.Option(
        help="Comma-separated ways to check (default: predict, bundle, and each server given).")] = None,
    json: JsonFlag = False,
) -> None:
    """The same canary images through every way ARTIFACT is served; exit 1 when one disagrees with the runner."""
    chosen = [w.strip() for w in ways.split(",") if w.strip()] if ways else None
    with console.status(f"conform {artifact.name}"):
        options = Options(variant=variant, serve=None if serve == "none" else serve, triton=triton)
        rows = conform(artifact, images, options, chosen)
    if json:
        print_json([{**asdict(r), "ok": r.ok} for r in rows])
    else:
        table = Table(title=f"{artifact.name}: every way against the in-process runner (agreement in %)")
        table.add_column("way", no_wrap=True, min_width=14)
        for name in ("images", "top-1", "top-5", "max |diff|", "on", "verdict"):
            table.add_column(name)
        for r in rows:
            table.add_row(r.way, str(r.n), f"{r.top1:.1f}", f"{r.top5:.1f}", f"{r.max_diff:.3g}", r.kind,
                          _verdict(r))
        stdout.print(table)
    check(rows)


def _verdict(r) -> str:
    if r.skipped:
        return f"not checked: {escape(r.skipped)}"
    return "ok" if r.ok else "[red]" + escape("; ".join(r.failures)) + "[/]"
