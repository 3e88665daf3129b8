"""`zoodeploy evaluate`: accuracy and drift vs fp32 of each variant on the held-out split."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zoodeploy.artifact import Artifact, variant_name
from zoodeploy.cli.common import ArtifactArg, JsonFlag, ThreadsOpt, console, print_json
from zoodeploy.evaluate.accuracy import eval_splits, evaluate_variants, same_data
from zoodeploy.progress import on_terminal
from zoodeploy.runtime import RunOptions

stdout = Console()
VariantsOpt = Annotated[list[str] | None, typer.Option(
    "--variants", help="Variants to include, comma-separated or repeated (default: every one).")]
DataOpt = Annotated[str | None, typer.Option(
    "--data", help="`digits` or an ImageFolder directory (default: the card's data); its test split is used.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, or cuda for GPU variants.")]
OnOpt = Annotated[str | None, typer.Option(
    "--on", help="Run the evaluation inside an emulated device (`arm64`), through each variant's edge bundle.")]


def show_progress(json: bool) -> bool:
    """Progress bars for a person at a terminal; not in JSON mode or in logs."""
    return not json and on_terminal()


def split_csv(values: list[str] | None) -> list[str] | None:
    """`--variants a,b --variants c` -> [a, b, c]; None when not given."""
    out = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    return out or None


def evaluate(artifact: ArtifactArg, variants: VariantsOpt = None, data: DataOpt = None,
             threads: ThreadsOpt = None, device: DeviceOpt = "cpu", on: OnOpt = None, json: JsonFlag = False) -> None:
    """Top-1, top-5, drop vs fp32, agreement and max logit error of each variant (test split only)."""
    if on:
        return _evaluate_on(artifact, on, split_csv(variants), json)
    art = Artifact(artifact)
    card = art.card
    splits = eval_splits(card, data)
    art.use_splits(splits)
    names = [variant_name(card, n) for n in split_csv(variants) or []] or None  # pass names taken too
    figures = evaluate_variants(art, names, options=RunOptions(threads=threads, device=device),
                                progress=show_progress(json))
    recorded = same_data(card.data, splits.spec)
    if json:
        print_json({"artifact": str(artifact), "data": splits.spec.source, "split": "test",
                    "recorded_in_card": recorded, "variants": {n: a.model_dump(mode="json") for n, a in figures.items()}})
        return
    stdout.print(_table(figures, f"{card.name} on the {splits.spec.source} test split"))
    if not recorded:
        console.print(f"not recorded in the card: {splits.spec.source} is not the data the card records")


def _evaluate_on(artifact, on: str, variants: list[str] | None, json: bool) -> None:
    """The held-out evaluation inside an emulated device (zoodeploy.device), recorded per ISA."""
    from zoodeploy.device.evaluate import evaluate_on
    figures = evaluate_on(artifact, on, variants, say=lambda line: console.print(line, markup=False, highlight=False))
    if json:
        print_json({"artifact": str(artifact), "on": on, "split": "test", "recorded_in_card": True,
                    "variants": {n: a.model_dump(mode="json") for n, a in figures.items()}})
        return
    stdout.print(_table(figures, f"{Artifact(artifact).card.name} on {on} (emulated), test split"))


def _table(figures: dict, title: str) -> Table:
    n = next(iter(figures.values())).n
    table = Table("variant", "top-1 %", "top-5 %", "change vs fp32 (pt)", "agreement %", "max |logit err|",
                  title=f"{title} ({n} images, 1 image = {100 / n:.2f} pt)")
    for name, a in figures.items():
        table.add_row(name, _f(a.top1, ".2f"), _f(a.top5, ".2f"), a.change(), _f(a.agreement, ".2f"),
                      _f(a.max_abs_err, ".3g"))
    return table


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)
