"""`zoodeploy check`: the deployment gate; exit 1 with one line per failing variant and metric."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from zoodeploy.bench.latency import BenchConfig
from zoodeploy.cli.bench import MaxSecondsOpt
from zoodeploy.cli.common import DEFAULT_MAX_DROP, ArtifactArg, JsonFlag, MaxDropOpt, ThreadsOpt, print_json
from zoodeploy.cli.evaluate import VariantsOpt, show_progress, split_csv
from zoodeploy.gate import GateConfig, GateReport, check as run_gate
from zoodeploy.progress import stage_say


def check(
    artifact: ArtifactArg,
    max_drop: MaxDropOpt = DEFAULT_MAX_DROP,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="Latency-ratio baseline JSON (default: ARTIFACT/latency-baseline.json).")] = None,
    max_slowdown: Annotated[float | None, typer.Option(
        "--max-slowdown", help="Fail when a variant's latency ratio to fp32 exceeds the baseline ratio times this.")] = None,
    update_baseline: Annotated[bool, typer.Option(
        "--update-baseline/--no-update-baseline", help="Store this run's ratios as the baseline (when accuracy passes).")] = False,
    variants: VariantsOpt = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Batch size timed (default: the baseline's, else 1).")] = None,
    threads: ThreadsOpt = None,
    max_seconds: MaxSecondsOpt = 30.0,
    json: JsonFlag = False,
) -> None:
    """Fail when a variant drifts past --max-drop or got slower, relative to fp32, than its baseline."""
    cfg = GateConfig(max_drop=max_drop, max_slowdown=max_slowdown, baseline=baseline,
                     update_baseline=update_baseline, variants=split_csv(variants), batch=batch,
                     threads=threads, timing=BenchConfig(max_seconds=max_seconds))
    report = run_gate(artifact, cfg, progress=show_progress(json), say=stage_say(not json))
    if json:
        print_json(report.to_dict())
    else:
        _print(report, cfg)
    for failure in report.failures:
        print(failure.line(), file=sys.stderr)
    if report.failures:
        raise typer.Exit(1)


def _print(report: GateReport, cfg: GateConfig) -> None:
    failed = {(f.variant, f.metric) for f in report.failures}
    base = report.baseline.ratios if report.baseline else {}
    for name, acc in report.accuracy.items():
        if name == "fp32":
            print(f"     fp32     {acc.summary()} (reference, n={acc.n})")
            continue
        mark = "FAIL" if (name, "accuracy") in failed else "ok  "
        line = f"{mark} {name:<8} {acc.summary()}, {acc.change()} pt vs fp32 (budget -{cfg.max_drop:g})"
        if name in report.ratios:
            mark = "FAIL" if (name, "latency") in failed else "ok  "
            ref = f", baseline {base[name]:.2f}x" if name in base and not report.updated else ""
            line += f"; {mark} latency {report.ratios[name]:.2f}x fp32{ref}"
        print(line)
    for note in report.notes:
        print(f"note: {note}")
    if report.updated:
        print(f"baseline written: {report.baseline_path}")
