"""Latency and throughput of a runner: warm-up, then windows until two successive agree."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from zoodeploy.card import LatencyStats


@dataclass(frozen=True)
class BenchConfig:
    warmup: int = 10  # untimed runs first (allocations, caches, thread pools)
    window: int = 20  # runs per window
    stability: float = 0.05  # stop when two successive window medians differ by less than this
    min_runs: int = 40
    max_runs: int = 2000
    max_seconds: float = 20.0  # per measurement, whatever the stability

    def __post_init__(self):
        if self.window < 2 or self.min_runs < self.window or self.max_runs < self.min_runs:
            raise ValueError("need window >= 2 and window <= min_runs <= max_runs")


def measure(run, x: np.ndarray, cfg: BenchConfig = BenchConfig(), label: str = "",
            progress: bool = False) -> LatencyStats:
    """Time `run(x)` (one batch per call) until stable; percentiles over every timed run."""
    for _ in range(cfg.warmup):
        run(x)
    times: list[float] = []
    medians: list[float] = []
    start = time.perf_counter()
    bar = tqdm(total=cfg.max_runs, desc=f"bench {label}".strip(), unit="run", disable=not progress,
               leave=False)
    while len(times) < cfg.max_runs:
        for _ in range(cfg.window):
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
        bar.update(cfg.window)
        medians.append(float(np.median(times[-cfg.window:])))
        stable = len(medians) >= 2 and abs(medians[-1] - medians[-2]) <= cfg.stability * medians[-2]
        if len(times) >= cfg.min_runs and (stable or time.perf_counter() - start > cfg.max_seconds):
            break
    bar.close()
    ms = np.asarray(times) * 1000.0
    batch = len(x)
    return LatencyStats(batch=batch, runs=len(ms), p50_ms=float(np.percentile(ms, 50)),
                        p90_ms=float(np.percentile(ms, 90)), p99_ms=float(np.percentile(ms, 99)),
                        mean_ms=float(ms.mean()), throughput=float(batch * 1000.0 / np.median(ms)),
                        settings={"stable": bool(stable), "warmup": cfg.warmup, "window": cfg.window,
                                  "stability": cfg.stability})
