"""Benchmark an artifact's variants against its PyTorch eager model, in one interleaved run."""

from __future__ import annotations

import os
import platform
import resource
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from zoodeploy.bench.latency import BenchConfig, measure_many
from zoodeploy.artifact import Artifact, variant_name
from zoodeploy.card import LatencyStats, ModelCard, RunSettings, ThroughputStats
from zoodeploy.errors import ZoodeployError
from zoodeploy.progress import Eta, Say, quiet
from zoodeploy.preprocess import synthetic_batch
from zoodeploy.evaluate.accuracy import runnable_variants
from zoodeploy.runtime import EAGER, RunOptions, open_runner
from zoodeploy.runtime.base import available_cores
from zoodeploy.target import cpu_model, detect_isa


@dataclass
class BenchOptions:
    variants: list[str] | None = None  # default: every variant the device can run
    batches: tuple[int, ...] = (1,)
    threads: int | None = None  # intra-op threads for every backend; default: available cores
    device: str = "cpu"
    spin: bool = True  # ORT thread spinning (lowest latency; burns idle CPU)
    eager: bool = True  # time the PyTorch model too (when the card has a checkpoint): the baseline
    throughput: bool = False  # also find each variant's most images/s over batches x streams (bench.throughput)
    timing: BenchConfig = field(default_factory=BenchConfig)

    def __post_init__(self):
        self.batches = tuple(int(b) for b in self.batches)
        if not self.batches or min(self.batches) < 1:
            raise ZoodeployError("--batch needs one or more sizes >= 1, e.g. --batch 1,8,32")
        if self.threads is not None and self.threads < 1:
            raise ZoodeployError(f"--threads must be >= 1, got {self.threads}")
        if self.device not in ("cpu", "cuda"):
            raise ZoodeployError(f"unknown device {self.device!r}; use cpu or cuda")
        self.threads = self.threads or available_cores()


@dataclass
class BenchResult:
    """Figures of one run: every variant and the eager baseline, by batch size."""

    run_id: str
    threads: int
    device: str
    peak_rss_mb: float  # of the whole process, over the run
    host: dict[str, Any]
    variants: dict[str, dict[int, LatencyStats]]
    eager: dict[int, LatencyStats]
    throughput: dict[str, ThroughputStats] = field(default_factory=dict)  # by variant, with --throughput

    def to_dict(self) -> dict[str, Any]:
        def rows(d):
            return {str(b): s.model_dump(mode="json") for b, s in d.items()}
        return {"run_id": self.run_id, "threads": self.threads, "device": self.device,
                "peak_rss_mb": self.peak_rss_mb, "host": self.host, "eager": rows(self.eager),
                "variants": {n: rows(d) for n, d in self.variants.items()},
                "throughput": {n: t.model_dump(mode="json") for n, t in self.throughput.items()}}


def host_info() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores_available": available_cores(), "os_cpu_count": os.cpu_count(),
            "machine": platform.machine(), "node": platform.node()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if platform.system() == "Darwin" else 2**10), 1)


def timing_input(x: np.ndarray, batch: int) -> np.ndarray:
    """The first `batch` real test images (repeated when the split is smaller)."""
    return np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])))


def timing_images(art: Artifact) -> tuple[np.ndarray, str]:
    """What latency is measured on: the held-out test images when there are some, else generated
    inputs (timing needs no labels: an artifact without data is timed all the same)."""
    card = art.card
    if card.data is not None:
        return art.test_data()[0], "real images from the test split"
    x = synthetic_batch(card.preprocessing, 32)
    return x, "generated inputs (standard normal; the card records no data)"


def bench_variants(artifact: Artifact | str | Path, opts: BenchOptions | None = None, *,
                   record: bool = True, progress: bool = False, say: Say = quiet) -> BenchResult:
    """Latency of each variant (and eager) at each batch size, on real test images (the artifact's
    test split, preprocessed once per handle: `Artifact.test_data`). One line per batch size timed,
    with an ETA, goes to `say` (for logs, where bars draw nothing)."""
    opts = opts or BenchOptions()
    if opts.device == "cuda":  # one clear error, not PyTorch's, when there is no GPU
        from zoodeploy.runtime.gpu import require_cuda
        require_cuda()
    art = Artifact.of(artifact)
    card = art.card
    # unknown names fail before any work; a pass's name means the variant it makes
    names = [variant_name(card, n) for n in opts.variants] if opts.variants else runnable_variants(card, opts.device)
    x_test, source = timing_images(art)
    run_opts = RunOptions(threads=opts.threads, device=opts.device, spin=opts.spin)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    per_batch: dict[int, dict[str, LatencyStats]] = {}
    with ExitStack() as stack:
        runners = {}
        eager = opts.eager and card.checkpoint is not None  # a lone ONNX file has no PyTorch model
        for name in ([EAGER] if eager else []) + names:
            runners[name] = stack.enter_context(open_runner(art, name, run_opts))
        eager_threads = _eager_thread_counts(opts) if eager else ()
        eta = Eta(len(opts.batches))
        for i, b in enumerate(opts.batches, 1):
            x = timing_input(x_test, b)
            calls = {name: partial(r.run, x) for name, r in runners.items() if name != EAGER}
            for n in eager_threads:  # eager at 1 and N threads, the better kept: see _eager_thread_counts
                calls[_eager_at(n)] = partial(_run_at, runners[EAGER].run, x, n)
            per_batch[b] = remeasure_unstable(calls, measure_many(calls, b, opts.timing, progress, f"batch {b}"),
                                              b, opts.timing, progress)
            if eager_threads:
                per_batch[b] = keep_better_eager(per_batch[b], eager_threads)
            for name, stats in per_batch[b].items():
                threads = stats.settings.intra_op_threads if name == EAGER else None
                stats.settings = run_settings(runners[name].settings, stats.settings, run_id=run_id,
                                              input=f"{b} {source}")
                if threads:
                    stats.settings.intra_op_threads = threads
            say(f"timed batch {b}: " + ", ".join(
                f"{n} {s.p50_ms:.3g} ms{'' if s.settings.stable else ' (unstable)'}" for n, s in per_batch[b].items())
                + f" ({eta.after(i)})")
        if len(eager_threads) > 1:
            _torch_threads(opts.threads)  # PyTorch left at the threads asked for
    best = _throughput(art, names, x_test, run_opts, opts, progress, say) if opts.throughput else {}
    result = _result(per_batch, best, opts, run_id, source)
    if record:
        record_latency(art, result)
    return result


def _throughput(art: Artifact, names: list[str], x: np.ndarray, run_opts: RunOptions, opts: BenchOptions,
                progress: bool, say: Say) -> dict[str, ThroughputStats]:
    """Each variant's most images/s over the batch sizes asked for x requests in flight
    (`bench.throughput`); a GPU runs one request at a time here."""
    from zoodeploy.bench.throughput import measure_throughput
    streams = (1,) if opts.device == "cuda" else None
    best = measure_throughput(names, lambda n, k: open_runner(art, n, replace(run_opts, streams=k)), x,
                              opts.batches, opts.threads, opts.timing, streams=streams, progress=progress)
    say("throughput: " + ", ".join(f"{n} {t.throughput:,.0f} img/s (batch {t.batch} x {t.streams} in flight"
                                   f"{'' if t.settings.stable else ', unstable'})" for n, t in best.items()))
    return best


def _eager_thread_counts(opts: BenchOptions) -> tuple[int, ...]:
    """Eager PyTorch is timed at 1 and at N threads and the better kept: OpenMP's N threads
    busy-wait for each other, and on a machine whose other work takes cores a 2-thread model was
    measured 14x slower than on 1 (MobileNetV2 at 32 px: 15 ms vs 214 ms), which would inflate
    every speed-up over eager by as much."""
    return (opts.threads, 1) if opts.device == "cpu" and opts.threads > 1 else (opts.threads,)


def _eager_at(threads: int) -> str:
    return f"{EAGER}@{threads}"


def _run_at(run, x: np.ndarray, threads: int):
    _torch_threads(threads)
    return run(x)


def _torch_threads(n: int) -> None:
    import torch  # the eager runner has imported it
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def keep_better_eager(rows: dict[str, LatencyStats], counts: tuple[int, ...]) -> dict[str, LatencyStats]:
    """The eager rows at each thread count folded into one EAGER row: the stable one with the lower
    p50 (any, when none is stable), its thread count recorded."""
    timed = {n: rows.pop(_eager_at(n)) for n in counts}
    best = min(timed, key=lambda n: (not (timed[n].settings and timed[n].settings.stable), timed[n].p50_ms))
    rows[EAGER] = timed[best]
    rows[EAGER].settings.intra_op_threads = best
    for s in rows.values():  # the other rows were interleaved with "eager", at whichever count
        if s.settings:
            names = [EAGER if n.startswith(f"{EAGER}@") else n for n in s.settings.interleaved_with]
            s.settings.interleaved_with = list(dict.fromkeys(names))
    return rows


def retry_config(cfg: BenchConfig) -> BenchConfig:
    """Timing for a second try at unstable rows: longer windows with a longer settle pause, so a
    burst of other work on the machine falls inside one window instead of spreading over all."""
    return replace(cfg, window_seconds=2 * cfg.window_seconds, settle_seconds=max(cfg.settle_seconds, 0.25),
                   min_runs=2 * cfg.min_runs, max_runs=max(cfg.max_runs, 2 * cfg.min_runs))


def remeasure_unstable(calls: dict, rows: dict[str, LatencyStats], batch: int, cfg: BenchConfig,
                       progress: bool = False) -> dict[str, LatencyStats]:
    """Time again, after a pause, the calls whose figures did not settle (`retry_config`); a row
    that settles the second time replaces the first; one that does not stays marked unstable (and
    a selection never picks it on speed: `zoodeploy.artifact.select`)."""
    shaky = [n for n, s in rows.items() if s.settings is not None and s.settings.stable is False]
    if not shaky:
        return rows
    _pause(RETRY_PAUSE_S)
    again = measure_many({n: calls[n] for n in shaky}, batch, retry_config(cfg), progress, f"batch {batch} again")
    for n, s in again.items():  # the second figures replace the first: settled, or still marked unstable
        s.settings.interleaved_with = rows[n].settings.interleaved_with
        rows[n] = s
    return rows


RETRY_PAUSE_S = 1.0  # idle time before re-measuring: lets another process's burst pass
_pause = time.sleep  # module-level so a test runs without waiting


def _result(per_batch: dict[int, dict[str, LatencyStats]], best: dict[str, ThroughputStats], opts: BenchOptions,
            run_id: str, source: str) -> BenchResult:
    host, peak = host_info(), peak_rss_mb()
    where = f"{host['cpu']} ({detect_isa().summary})"
    for stats in per_batch.values():
        eager = stats.get(EAGER)
        for s in stats.values():
            s.speedup_vs_eager = eager.p50_ms / s.p50_ms if eager else None
            s.settings.host, s.settings.process_peak_rss_mb = where, peak
    for t in best.values():
        t.settings = t.settings.model_copy(update={"run_id": run_id, "host": where, "process_peak_rss_mb": peak,
                                                   "input": f"{t.batch} x {t.streams} {source}"})
    names = [n for n in next(iter(per_batch.values())) if n != EAGER]
    return BenchResult(run_id=run_id, threads=opts.threads, device=opts.device, peak_rss_mb=peak, host=host,
                       variants={n: {b: per_batch[b][n] for b in per_batch} for n in names},
                       eager={b: per_batch[b][EAGER] for b in per_batch if EAGER in per_batch[b]}, throughput=best)


def record_latency(artifact: Artifact | str | Path, result: BenchResult) -> ModelCard:
    """Store the figures in the card (`add_latency`), under its lock."""
    art = Artifact.of(artifact)
    with art.update() as card:  # re-read under the lock: the run was long, others wrote
        add_latency(card, result)
    return card


def add_latency(card: ModelCard, result: BenchResult) -> None:
    """The figures by batch size into `card` (the eager baseline in `eager_latency`), replacing
    the earlier figures at the batch sizes measured: a run at batch 8 keeps the batch-1 rows
    another run wrote (each row names its run, and the report says when rows come from several).
    A variant's best throughput (`--throughput`) replaces the one recorded before."""
    for name, rows in result.variants.items():
        card.variant(name).latency.update({str(b): s for b, s in rows.items()})
    for name, best in result.throughput.items():  # a run without --throughput keeps the last one found
        card.variant(name).throughput = best
    card.eager_latency.update({str(b): s for b, s in result.eager.items()})


def run_settings(runner: dict[str, Any], timing: RunSettings | None, **more: Any) -> RunSettings:
    """A runner's settings (its dict) and the timing run's, as one typed record; a runner's own
    knobs that the record has no field for go into `config`, as text."""
    fields = RunSettings.model_fields
    typed = {k: v for k, v in runner.items() if k in fields}
    config = {k: str(v) for k, v in runner.items() if k not in fields}
    timed = timing.model_dump(exclude_unset=True) if timing is not None else {}
    return RunSettings(**{**typed, **timed, **more, "runtime": runner.get("runtime", "unknown"),
                          "config": {**config, **typed.get("config", {})}})

