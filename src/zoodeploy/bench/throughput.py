"""Throughput: the most images/s each variant reaches on this machine, and the settings that reach it.

Batch-1 latency says how fast one image comes back; a bulk job or a busy server wants the most images
per second, which comes from other settings: a larger batch, and several requests in flight at once,
each on its share of the threads (OpenVINO streams under its THROUGHPUT hint; for ONNX Runtime, one
session per stream on its own Python thread: `runtime.concurrent`). Every (batch, streams) setting of
every variant is one call that runs `batch * streams` images with `streams` requests in flight and
returns when all are done; the calls are timed like latency (`bench.latency.measure_many`:
interleaved windows, a settle pause before each, because ONNX Runtime, OpenMP and OpenVINO threads
spin), so images/s is total images over the wall time of the timed calls, and the settings of all
variants compete under the same noise. The best stable setting is kept per variant
(`ThroughputStats`), with what every other setting reached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from zoodeploy.bench.latency import BenchConfig, Call, measure_many
from zoodeploy.bench.variants import remeasure_unstable, run_settings, timing_input
from zoodeploy.card import LatencyStats, ThroughputStats, settled
from zoodeploy.runtime.base import Runner

OpenAt = Callable[[str, int], Runner]  # (variant, streams) -> a runner with that many requests in flight


UNSTABLE = " (unstable)"  # marks a setting in `tried` that cannot be the best: its timing never settled


@dataclass(frozen=True)
class Setting:
    """Requests of `batch` images, `streams` of them in flight at once."""

    batch: int
    streams: int

    @property
    def images(self) -> int:
        """Images per timed call: one request per stream."""
        return self.batch * self.streams

    @property
    def label(self) -> str:
        return f"batch {self.batch} x {self.streams} in flight"


def stream_counts(threads: int) -> tuple[int, ...]:
    """Requests in flight to try: 1, 2, 4, ... below `threads`, and `threads` (one thread each).
    More streams than threads would only share cores that are already busy."""
    counts = [1]
    while counts[-1] * 2 < threads:
        counts.append(counts[-1] * 2)
    return tuple(counts + ([threads] if threads > 1 else []))


def settings_to_try(batches: tuple[int, ...], threads: int, fixed_batch: int | None = None,
                    streams: tuple[int, ...] | None = None) -> list[Setting]:
    """Every batch x streams pair (a fixed-batch export: its own batch only)."""
    sizes = (fixed_batch,) if fixed_batch else batches
    return [Setting(b, s) for b in sizes for s in (streams or stream_counts(threads))]


def best(rows: Mapping[Setting, LatencyStats]) -> Setting:
    """The setting with the most images/s among the stable ones (among all, when none settled)."""
    return max(rows, key=lambda s: (settled(rows[s]), rows[s].throughput))


def measure_throughput(names: list[str], open_at: OpenAt, x: np.ndarray, batches: tuple[int, ...], threads: int,
                       cfg: BenchConfig, *, streams: tuple[int, ...] | None = None,
                       progress: bool = False) -> dict[str, ThroughputStats]:
    """Each variant's best (batch, streams) on `x`'s images, every setting of every variant
    interleaved in one run; the record carries the settings of the runner that reached it."""
    with ExitStack() as stack:
        runners: dict[tuple[str, int], Runner] = {}
        tried: dict[str, list[Setting]] = {}
        for name in names:
            one = runners[name, 1] = stack.enter_context(open_at(name, 1))
            tried[name] = settings_to_try(batches, threads, getattr(one, "batch", None), streams)
            for n in sorted({s.streams for s in tried[name]} - {1}):
                runners[name, n] = stack.enter_context(open_at(name, n))
        inputs = {n: timing_input(x, n) for n in {s.images for ss in tried.values() for s in ss}}
        calls = {(n, s): partial(runners[n, s.streams].run, inputs[s.images]) for n in names for s in tried[n]}
        # one measurement for every setting of every variant: its time limit grows with the variants
        rows = _measure(calls, replace(cfg, max_seconds=cfg.max_seconds * max(1, len(names))), progress)
        out = {}
        for n in names:
            record = _record({s: rows[n, s] for s in tried[n]}, threads)
            record.settings = run_settings(runners[n, record.streams].settings, record.settings)
            out[n] = record
        return out


def _measure(calls: dict[tuple[str, Setting], Call], cfg: BenchConfig,
             progress: bool) -> dict[tuple[str, Setting], LatencyStats]:
    """measure_many over the calls (unstable ones timed again), each row's images/s counting the
    call's own `batch * streams` images."""
    keys = {f"{n} {s.label}": (n, s) for n, s in calls}
    named = {k: calls[key] for k, key in keys.items()}
    stats = remeasure_unstable(named, measure_many(named, 1, cfg, progress, "throughput"), 1, cfg, progress)
    return {keys[k]: s.model_copy(update={"batch": keys[k][1].images, "throughput": s.throughput * keys[k][1].images})
            for k, s in stats.items()}


def _record(rows: dict[Setting, LatencyStats], threads: int) -> ThroughputStats:
    top = best(rows)
    s = rows[top]
    return ThroughputStats(throughput=s.throughput, batch=top.batch, streams=top.streams, threads=threads,
                           runs=s.runs, tried={k.label + ("" if settled(v) else UNSTABLE): round(v.throughput, 1)
                                               for k, v in rows.items()},
                           settings=s.settings)
