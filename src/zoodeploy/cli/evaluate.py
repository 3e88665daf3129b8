"""`zoodeploy evaluate`: accuracy and drift vs fp32 of each variant on the held-out split."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zoodeploy.card import load_card
from zoodeploy.cli.common import ArtifactArg, JsonFlag, ThreadsOpt, console, print_json
from zoodeploy.evaluate.accuracy import eval_splits, evaluate_variants, same_data
from zoodeploy.runtime import RunOptions

stdout = Console()
VariantsOpt = Annotated[list[str] | None, typer.Option(
    "--variants", help="Variants to include, comma-separated or repeated (default: every one).")]
DataOpt = Annotated[str | None, typer.Option(
    "--data", help="`digits` or an ImageFolder directory (default: the card's data); its test split is used.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, or cuda for GPU variants.")]


def show_progress(json: bool) -> bool:
    """Progress bars for a person at a terminal; not in JSON mode or in logs."""
    return not json and sys.stderr.isatty()


def split_csv(values: list[str] | None) -> list[str] | None:
    """`--variants a,b --variants c` -> [a, b, c]; None when not given."""
    out = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    return out or None


def evaluate(artifact: ArtifactArg, variants: VariantsOpt = None, data: DataOpt = None,
             threads: ThreadsOpt = None, device: DeviceOpt = "cpu", json: JsonFlag = False) -> None:
    """Top-1, top-5, drop vs fp32, agreement and max logit error of each variant (test split only)."""
    card = load_card(artifact)
    splits = eval_splits(card, data)
    figures = evaluate_variants(artifact, split_csv(variants), splits=splits,
                                options=RunOptions(threads=threads, device=device), progress=show_progress(json))
    recorded = same_data(card.data, splits.spec)
    if json:
        print_json({"artifact": str(artifact), "data": splits.spec.source, "split": "test",
                    "recorded_in_card": recorded, "variants": {n: a.model_dump(mode="json") for n, a in figures.items()}})
        return
    n = next(iter(figures.values())).n
    table = Table("variant", "top-1 %", "top-5 %", "drop vs fp32 (pt)", "agreement %", "max |logit err|",
                  title=f"{card.name} on the {splits.spec.source} test split ({n} images, 1 image = {100 / n:.2f} pt)")
    for name, a in figures.items():
        table.add_row(name, f"{a.top1:.2f}", f"{a.top5:.2f}", _f(a.drop_pt, "+.2f"), _f(a.agreement, ".2f"),
                      _f(a.max_abs_err, ".3g"))
    stdout.print(table)
    if not recorded:
        console.print(f"not recorded in the card: {splits.spec.source} is not the data the card records")


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)
