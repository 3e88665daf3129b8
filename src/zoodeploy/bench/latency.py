"""Latency and throughput: warm-up, then timed windows until successive windows agree.

Several runners are timed *interleaved* (a window of each in turn, the order rotating every
round), so noise from the rest of the machine hits all of them alike and their ratios stay
meaningful on a busy host. Before each window the thread pools of the runner before it get
`settle_seconds` to stop spinning (ONNX Runtime and OpenMP busy-wait after a run), then one
untimed run wakes the runner's own pool. A window is at least `window` runs and at least
`window_seconds` long (a 0.05 ms model needs thousands of runs for a median that means
anything). Measurement stops when the medians of the last `windows` windows agree within
`stability` (Model Navigator's rule), or at `max_seconds`, and the figures say which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from zoodeploy.card import LatencyStats, RunSettings
from zoodeploy.errors import ZoodeployError
from zoodeploy.progress import bar as progress_bar

Call = Callable[[], object]
_clock = time.perf_counter  # module-level so a test can drive the stopping rule with a fake clock
_sleep = time.sleep


@dataclass(frozen=True)
class BenchConfig:
    warmup: int = 10  # untimed runs first (allocations, caches, thread pools)
    window: int = 10  # at least this many timed runs per window ...
    window_seconds: float = 0.2  # ... and at least this long
    settle_seconds: float = 0.02  # idle time before each window of an interleaved run
    windows: int = 3  # this many successive window medians must agree ...
    stability: float = 0.10  # ... within this fraction of their mean
    min_runs: int = 30  # timed runs per runner, at least
    max_runs: int = 20_000  # per runner; it stops being timed there
    max_seconds: float = 30.0  # per measurement (all runners together), whatever the stability

    def __post_init__(self):
        if self.warmup < 1 or self.window < 2 or self.windows < 2:
            raise ZoodeployError("bench needs warmup >= 1, window >= 2 runs and windows >= 2")
        if not self.min_runs <= self.max_runs or self.min_runs < 1:
            raise ZoodeployError("bench needs 1 <= min_runs <= max_runs")
        if self.stability <= 0 or min(self.window_seconds, self.settle_seconds) < 0 or self.max_seconds <= 0:
            raise ZoodeployError("bench needs stability > 0, window and settle seconds >= 0, max_seconds > 0")


@dataclass
class _Track:
    """One runner's timings while it is measured."""

    call: Call
    times: list[float] = field(default_factory=list)
    medians: list[float] = field(default_factory=list)

    def stable(self, cfg: BenchConfig) -> bool:
        last = self.medians[-cfg.windows:]
        return len(last) == cfg.windows and (max(last) - min(last)) <= cfg.stability * float(np.mean(last))

    def done(self, cfg: BenchConfig) -> bool:
        return len(self.times) >= cfg.max_runs or (len(self.times) >= cfg.min_runs and self.stable(cfg))


def _warm_up(call: Call, cfg: BenchConfig) -> _Track:
    for _ in range(cfg.warmup):
        call()
    return _Track(call)


def _time_window(track: _Track, cfg: BenchConfig) -> None:
    track.call()  # untimed: wakes this runner's thread pool, refills its caches
    times: list[float] = []
    start = _clock()
    while (len(times) < cfg.window or _clock() - start < cfg.window_seconds) \
            and len(track.times) + len(times) < cfg.max_runs:
        t0 = _clock()
        track.call()
        times.append(_clock() - t0)
    track.times += times
    track.medians.append(float(np.median(times)))


def measure_many(calls: Mapping[str, Call], batch: int, cfg: BenchConfig = BenchConfig(),
                 progress: bool = False, label: str = "") -> dict[str, LatencyStats]:
    """Time each call (one batch of `batch` images per call), interleaved, until all are stable."""
    if not calls:
        return {}
    tracks = {name: _warm_up(call, cfg) for name, call in calls.items()}
    names = list(tracks)
    start = _clock()
    bar = progress_bar(desc=f"bench {label}".strip(), unit="window", disable=not progress, leave=False)
    rounds = 0
    while not all(t.done(cfg) for t in tracks.values()) and _clock() - start < cfg.max_seconds:
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:  # rotate: no runner always follows the same one
            if len(tracks[name].times) < cfg.max_runs:
                if len(names) > 1:
                    _sleep(cfg.settle_seconds)
                _time_window(tracks[name], cfg)
        rounds += 1
        bar.update(1)
    bar.close()
    seconds = _clock() - start
    return {name: _stats(t, batch, cfg, seconds, [n for n in names if n != name])
            for name, t in tracks.items()}


def _stats(track: _Track, batch: int, cfg: BenchConfig, seconds: float, others: list[str]) -> LatencyStats:
    ms = np.asarray(track.times) * 1000.0
    return LatencyStats(
        batch=batch, runs=len(ms), p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)), p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()), throughput=float(batch * len(ms) * 1000.0 / ms.sum()),
        settings=RunSettings(runtime="unknown", stable=track.stable(cfg), windows=len(track.medians),
                             measure_seconds=round(seconds, 2), interleaved_with=others, bench=asdict(cfg)))


def measure(run: Callable[[np.ndarray], object], x: np.ndarray, cfg: BenchConfig = BenchConfig(),
            label: str = "", progress: bool = False) -> LatencyStats:
    """Time `run(x)` alone until stable; percentiles over every timed run."""
    return measure_many({label or "run": lambda: run(x)}, len(x), cfg, progress, label)[label or "run"]
