"""`zoodeploy bench`: latency and throughput of each variant against PyTorch eager, one run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zoodeploy.bench.latency import BenchConfig
from zoodeploy.bench.variants import BenchOptions, BenchResult, bench_variants
from zoodeploy.cli.common import ArtifactArg, JsonFlag, ThreadsOpt, print_json
from zoodeploy.cli.evaluate import DeviceOpt, VariantsOpt, show_progress, split_csv
from zoodeploy.errors import ZoodeployError
from zoodeploy.progress import stage_say

stdout = Console()
BatchOpt = Annotated[str, typer.Option("--batch", help="Batch sizes, comma-separated.")]
MaxSecondsOpt = Annotated[float, typer.Option(
    "--max-seconds", help="Time limit per batch size; figures that have not settled by then are marked unstable.")]
SpinOpt = Annotated[bool, typer.Option("--spin/--no-spin", help="ONNX Runtime thread spinning.")]
ThroughputOpt = Annotated[bool, typer.Option(
    "--throughput/--no-throughput", help="Also find each variant's most images/s over the batch sizes x requests in flight "
                         "(OpenVINO streams, ONNX Runtime sessions); recorded for --select throughput and predict.")]


def parse_batches(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise ZoodeployError(f"--batch takes comma-separated integers like 1,8,32, got {text!r}") from None


def bench(artifact: ArtifactArg, variants: VariantsOpt = None, batch: BatchOpt = "1,8,32",
          threads: ThreadsOpt = None, device: DeviceOpt = "cpu", spin: SpinOpt = True,
          max_seconds: MaxSecondsOpt = 30.0, throughput: ThroughputOpt = False, json: JsonFlag = False) -> None:
    """Latency p50/p90/p99, throughput and speed-up over PyTorch eager; recorded in the card."""
    opts = BenchOptions(variants=split_csv(variants), batches=parse_batches(batch), threads=threads,
                        device=device, spin=spin, throughput=throughput, timing=BenchConfig(max_seconds=max_seconds))
    result = bench_variants(artifact, opts, progress=show_progress(json), say=stage_say(not json))
    if json:
        print_json(result.to_dict())
        return
    stdout.print(result_table(result))
    if result.throughput:
        stdout.print(throughput_table(result))


def _vs_eager(x: float | None) -> str:
    """A speed-up over eager; beyond belief (MAX_SANE_SPEEDUP) it is flagged, not printed as fact."""
    from zoodeploy.artifact import MAX_SANE_SPEEDUP
    if x is None:
        return "-"
    return f"{x:.2f}x" if x <= MAX_SANE_SPEEDUP else f"{x:.3g}x (over {MAX_SANE_SPEEDUP:g}x: check eager)"


def result_table(result: BenchResult) -> Table:
    table = Table("variant", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "vs eager", "runs", "stable",
                  title=f"{result.threads} threads on {result.host['cpu']}",
                  caption=f"process peak memory {result.peak_rss_mb:.0f} MiB; run {result.run_id}")
    rows = [("eager", s) for s in result.eager.values()]
    rows += [(n, s) for n, by_batch in result.variants.items() for s in by_batch.values()]
    for name, s in sorted(rows, key=lambda r: r[1].batch):
        table.add_row(name, str(s.batch), f"{s.p50_ms:.3f}", f"{s.p90_ms:.3f}", f"{s.p99_ms:.3f}",
                      f"{s.throughput:,.0f}", _vs_eager(s.speedup_vs_eager),
                      str(s.runs), "yes" if s.settings and s.settings.stable else "no")
    return table


def throughput_table(result: BenchResult) -> Table:
    table = Table("variant", "img/s", "batch", "in flight", "runtime", "stable", "every setting tried (img/s)",
                  title=f"most images/s, {result.threads} threads in all")
    for name, t in result.throughput.items():
        tried = ", ".join(f"{k}: {v:,.0f}" for k, v in t.tried.items())
        table.add_row(name, f"{t.throughput:,.0f}", str(t.batch), str(t.streams), t.settings.runtime,
                      "yes" if t.settings.stable else "no", tried)
    return table
