"""`zoodeploy optimize`: fused, INT8 (with accuracy control), FP16 and ORT-format variants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zoodeploy.card import Variant
from zoodeploy.recipes import QuantRecipe
from zoodeploy.cli.common import (DEFAULT_MAX_DROP, SOURCE_HELP, JsonFlag, LabelsOpt, PreprocessingOpt, ThreadsOpt, console, print_json,
                                  say_skipped)
from zoodeploy.optimize.source import resolve_artifact
from zoodeploy.errors import OptimizeError
from zoodeploy.optimize import DEFAULT_PASSES, PASSES, Calibration, OptimizeConfig, Scheme, optimize as run_optimize
from zoodeploy.optimize.passes import parse_passes
from zoodeploy.target import TargetIsa

stdout = Console()


def _choices(enum) -> str:
    return " | ".join(e.value for e in enum)


def parse_max_drop(text: str) -> float | None:
    """`0.5` -> 0.5 points; `none` -> no accuracy control."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise OptimizeError(f"--max-drop must be a number of top-1 percentage points or `none`, got {text!r}") from None


def optimize(
    artifact: Annotated[str, typer.Argument(help=f"Artifact directory, or {SOURCE_HELP} (made into an artifact "
                                                 "first; a lone .onnx needs --calib-data).")],
    passes: Annotated[str | None, typer.Option(help="Comma-separated passes, e.g. fuse,int8,fp16,ort-format, or the "
                                                    "variants they make (fused, int8-ort, ...) (default: fuse,int8; a "
                                                    "pass's inputs are made first, and remade when stale).")] = None,
    fuse: Annotated[bool, typer.Option("--fuse/--no-fuse", help="Alias of --passes fuse: onnxslim + ORT offline graph optimizations -> fused.onnx.")] = False,
    int8: Annotated[bool, typer.Option("--int8/--no-int8", help="Alias of --passes int8: static QDQ INT8, per-channel, accuracy-controlled -> int8.onnx.")] = False,
    fp16: Annotated[bool, typer.Option("--fp16/--no-fp16", help="Alias of --passes fp16: FP16 with fp32 inputs/outputs (for GPUs) -> fp16.onnx.")] = False,
    ort_format: Annotated[bool, typer.Option("--ort-format/--no-ort-format", help="Alias of --passes ort-format: int8 in ORT format for mobile-class targets -> int8.ort.")] = False,
    calib_data: Annotated[str | None, typer.Option(help="`digits` or an image directory (default: the card's data); its train split only.")] = None,
    calib_size: Annotated[int, typer.Option(help="Calibration images.")] = 128,
    calibration: Annotated[str, typer.Option(help=f"Calibration method: {_choices(Calibration)}.")] = "minmax",
    scheme: Annotated[str, typer.Option(help=f"INT8 types: {_choices(Scheme)}; `auto` picks by this CPU's ISA, "
                                             "`tensorrt` = symmetric S8S8.")] = "auto",
    target_isa: Annotated[str | None, typer.Option(help=f"CPU the int8 model will run on: {_choices(TargetIsa)} "
                                                        "(picks the `auto` scheme; default: the card's target, "
                                                        "else host).")] = None,
    max_drop: Annotated[str, typer.Option(help="Top-1 drop budget in points on the validation split, or `none`.")]
    = str(DEFAULT_MAX_DROP),
    threads: ThreadsOpt = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="For a lone .onnx: the artifact directory to make (default: <stem>-artifact).")] = None,
    bench: Annotated[bool, typer.Option("--bench/--no-bench", help="Measure batch-1 latency against fused fp32.")] = True,
    labels: LabelsOpt = None,
    preprocessing: PreprocessingOpt = None,
    json: JsonFlag = False,
) -> None:
    """Make optimized variants of ARTIFACT (default passes: fuse,int8), each with accuracy and drift.

    A pass that fails is listed in one line and the others are still made; the exit code is 1 only
    when none of the passes asked for made its variant."""
    if not Path(artifact).is_dir():  # a new artifact whose card records --calib-data, split: calibrate
        #                              on its train split only, never on the images it is evaluated on
        art = resolve_artifact(artifact, calib_data, out, labels=labels, preprocessing=preprocessing)
        calib_data = out = None
    else:
        art = resolve_artifact(artifact, labels=labels, preprocessing=preprocessing)  # refuses those, in one line
    if not json:
        say_skipped(art)
    cfg = OptimizeConfig(passes=chosen_passes(passes, fuse=fuse, int8=int8, fp16=fp16, ort_format=ort_format),
                         calib_data=calib_data, calib_size=calib_size, calibration=calibration, scheme=scheme,
                         target_isa=target_isa or art.card.target_isa or "host",  # changed only when asked
                         max_drop=parse_max_drop(max_drop), threads=threads, bench=bench, out=out,
                         progress=not json)
    variants = run_optimize(art, cfg)  # raises only when none of the passes asked for made its variant
    for name, why in variants.not_made.items():  # on stderr, also under --json: stdout stays the variants
        console.print(f"[red]not made:[/] {name} ({why})", highlight=False, soft_wrap=True)
    if json:
        print_json([v.model_dump(mode="json") for v in variants])
        return
    stdout.print(_table(variants))
    stdout.print("speed-up: batch-1 p50 latency of fused fp32 (fp32 without it) / the variant's, same threads")
    for v in variants:
        for line in _details(v):
            stdout.print(line)
        for note in v.notes:
            console.print(f"[yellow]note:[/] {note}")


def chosen_passes(passes: str | None, **aliases: bool) -> tuple[str, ...]:
    """--passes and the alias flags together (in registry order); neither: the default passes."""
    named = list(parse_passes(passes)) if passes else []
    named += [name.replace("_", "-") for name, on in aliases.items() if on]
    return tuple(n for n in PASSES if n in named) or DEFAULT_PASSES


def _table(variants: list[Variant]) -> Table:
    what = next((v.accuracy.what for v in variants if v.accuracy), "top-1")
    table = Table("variant", "precision", f"test {what} %", "change vs fp32 pt", "agree %", "p50 ms b=1", "speed-up")
    for v in variants:
        a, lat = v.accuracy, v.latency.get("1")
        table.add_row(v.name, str(v.precision), f"{a.score:.2f}" if a else "-",
                      a.change() if a else "-",
                      f"{a.agreement:.1f}" if a and a.agreement is not None else "-",
                      f"{lat.p50_ms:.3f}" if lat else "-",
                      f"{v.speed.speedup:.2f}x" if v.speed else "-")
    return table


def _details(v: Variant) -> list[str]:
    """One line on how an INT8 variant was made: scheme, and what accuracy control did."""
    r = v.recipe
    if not isinstance(r, QuantRecipe):
        return []
    lines = [f"{v.name}: scheme {r.scheme} — {r.scheme_reason}; {r.calibration} calibration on {r.calib_data}"]
    ac = r.control
    if ac:
        kept = ac.nodes_kept_in_float
        lines.append(f"{v.name}: accuracy control: validation drop {ac.val_drop_pt:.2f} pt "
                     f"({'within' if ac.met else 'OVER'} the {ac.max_drop_pt:g} pt budget), "
                     f"{len(kept)} node(s) kept in float{': ' + ', '.join(kept) if kept else ''}")
    return lines
