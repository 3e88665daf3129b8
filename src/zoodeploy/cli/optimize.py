"""`zoodeploy optimize`: fused, INT8 (with accuracy control), FP16 and ORT-format variants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zoodeploy.card import Variant
from zoodeploy.cli.common import JsonFlag, ThreadsOpt, console, print_json
from zoodeploy.errors import OptimizeError
from zoodeploy.optimize import Calibration, OptimizeConfig, Scheme, optimize as run_optimize

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
    artifact: Annotated[Path, typer.Argument(help="Artifact directory, or a lone .onnx file (then pass --calib-data).")],
    fuse: Annotated[bool, typer.Option("--fuse", help="onnxslim + ORT offline graph optimizations -> fused.onnx.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Static QDQ INT8, per-channel, accuracy-controlled -> int8.onnx.")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="FP16 with fp32 inputs/outputs (for GPUs) -> fp16.onnx.")] = False,
    ort_format: Annotated[bool, typer.Option("--ort-format", help="int8 in ORT format for mobile-class targets -> int8.ort.")] = False,
    calib_data: Annotated[str | None, typer.Option(help="`digits` or an image directory (default: the card's data); its train split only.")] = None,
    calib_size: Annotated[int, typer.Option(help="Calibration images.")] = 128,
    calibration: Annotated[str, typer.Option(help=f"Calibration method: {_choices(Calibration)}.")] = "minmax",
    scheme: Annotated[str, typer.Option(help=f"INT8 types: {_choices(Scheme)}; `auto` picks by this CPU's ISA, "
                                             "`tensorrt` = symmetric S8S8.")] = "auto",
    max_drop: Annotated[str, typer.Option(help="Top-1 drop budget in points on the validation split, or `none`.")] = "0.5",
    threads: ThreadsOpt = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="For a lone .onnx: the artifact directory to make (default: <stem>-artifact).")] = None,
    bench: Annotated[bool, typer.Option("--bench/--no-bench", help="Measure batch-1 latency against fused fp32.")] = True,
    json: JsonFlag = False,
) -> None:
    """Make optimized variants of ARTIFACT (no flag: --fuse --int8), each with accuracy and drift."""
    if not (fuse or int8 or fp16 or ort_format):
        fuse = int8 = True
    cfg = OptimizeConfig(fuse=fuse, int8=int8, fp16=fp16, ort_format=ort_format, calib_data=calib_data,
                         calib_size=calib_size, calibration=calibration, scheme=scheme,
                         max_drop=parse_max_drop(max_drop), threads=threads, bench=bench, out=out,
                         progress=not json)
    variants = run_optimize(artifact, cfg)
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


def _table(variants: list[Variant]) -> Table:
    table = Table("variant", "precision", "test top-1 %", "drop pt", "agree %", "p50 ms b=1", "speed-up")
    for v in variants:
        a, lat = v.accuracy, v.latency.get("1")
        speed = (v.validation or {}).get("speed", {})
        table.add_row(v.name, v.precision, f"{a.top1:.2f}" if a else "-",
                      f"{a.drop_pt:+.2f}" if a and a.drop_pt is not None else "-",
                      f"{a.agreement:.1f}" if a and a.agreement is not None else "-",
                      f"{lat.p50_ms:.3f}" if lat else "-",
                      f"{speed['speedup']:.2f}x" if speed else "-")
    return table


def _details(v: Variant) -> list[str]:
    """One line on how an INT8 variant was made: scheme, and what accuracy control did."""
    if "scheme" not in v.recipe:
        return []
    lines = [f"{v.name}: scheme {v.recipe['scheme']} — {v.recipe['scheme_reason']}; {v.recipe['calibration']} "
             f"calibration on {v.recipe['calib_data']}"]
    ac = (v.validation or {}).get("accuracy_control")
    if ac:
        kept = ac["nodes_kept_in_float"]
        lines.append(f"{v.name}: accuracy control: validation drop {ac['val_drop_pt']:.2f} pt "
                     f"({'within' if ac['met'] else 'OVER'} the {ac['max_drop_pt']:g} pt budget), "
                     f"{len(kept)} node(s) kept in float{': ' + ', '.join(kept) if kept else ''}")
    return lines
