"""The measurement loop: its stopping rule on a fake clock, its statistics, its interleaving."""

import numpy as np
import pytest

from zoodeploy.bench.latency import BenchConfig, measure, measure_many
from zoodeploy.errors import ZoodeployError


CFG = BenchConfig(warmup=3, window=5, window_seconds=0.01, windows=3, stability=0.05, min_runs=20,
                  max_runs=10_000, max_seconds=5.0)


def test_steady_model_stops_after_three_agreeing_windows(clock):
    stats = measure(lambda x: clock.model("m", lambda n: 0.001)(), np.zeros((4, 3, 8, 8), np.float32), CFG)
    assert stats.settings.stable is True
    assert stats.settings.windows == 3  # the first three agree: no more are timed
    assert stats.runs == 3 * 10  # 10 runs of 1 ms fill each 10 ms window
    assert stats.p50_ms == pytest.approx(1.0) and stats.p99_ms == pytest.approx(1.0)
    assert stats.throughput == pytest.approx(4 / 0.001)  # batch 4, one batch per ms


def test_drifting_model_runs_to_the_time_limit_and_says_it_is_unstable(clock):
    # each run 2% slower than the one before: successive windows never agree within 5%
    stats = measure(lambda x: clock.model("m", lambda n: 0.001 * 1.02 ** n)(), np.zeros((1, 1, 1, 1), np.float32),
                    CFG)
    assert stats.settings.stable is False
    assert clock.now >= CFG.max_seconds * 0.9 or stats.runs >= CFG.max_runs


def test_percentiles_are_over_every_timed_run(clock):
    cost = lambda n: 0.001 * (1 + (n * 7919) % 100)  # noqa: E731  (a spread of 1..100 ms)
    cfg = BenchConfig(warmup=3, window=2, window_seconds=0.0, windows=2, min_runs=600, max_runs=600,
                      max_seconds=1e6)
    stats = measure(lambda x: clock.model("m", cost)(), np.zeros((1, 1, 1, 1), np.float32), cfg)
    # after the warm-up each window is one untimed run, then `window` timed ones
    timed = [cost(n) * 1000 for n in range(cfg.warmup + 1, len(clock.log) + 1) if (n - cfg.warmup - 1) % 3]
    assert stats.runs == len(timed) == 600
    for q, got in ((50, stats.p50_ms), (90, stats.p90_ms), (99, stats.p99_ms)):
        assert got == pytest.approx(np.percentile(timed, q))
    assert stats.mean_ms == pytest.approx(np.mean(timed))


def test_interleaved_runners_alternate_and_keep_their_own_figures(clock):
    calls = {"fast": clock.model("fast", lambda n: 0.001), "slow": clock.model("slow", lambda n: 0.004)}
    stats = measure_many(calls, 1, CFG)
    assert stats["slow"].p50_ms / stats["fast"].p50_ms == pytest.approx(4.0)
    assert stats["fast"].settings.interleaved_with == ["slow"]
    # windows alternate (fast, slow, slow, fast, ...): neither runner is always timed second
    timed = [n for i, n in enumerate(clock.log) if i >= 2 * CFG.warmup]
    firsts = [timed[i] for i in range(1, len(timed)) if timed[i] != timed[i - 1]]
    assert {"fast", "slow"} <= set(firsts)


def test_a_noisy_neighbour_hits_interleaved_runners_alike(clock):
    """A burst of load slows both runners in the same rounds, so their ratio survives it."""
    busy = lambda: 3.0 if 0.05 < clock.now < 0.2 else 1.0  # noqa: E731
    calls = {"a": clock.model("a", lambda n: 0.001 * busy()), "b": clock.model("b", lambda n: 0.002 * busy())}
    stats = measure_many(calls, 1, BenchConfig(warmup=3, window=5, window_seconds=0.01, windows=3,
                                               stability=0.05, min_runs=20, max_seconds=5.0))
    assert stats["b"].p50_ms / stats["a"].p50_ms == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize("bad", [dict(window=1), dict(min_runs=10, max_runs=5), dict(stability=0),
                                 dict(max_seconds=0), dict(warmup=0)])
def test_bad_config_is_refused(bad):
    with pytest.raises(ZoodeployError):
        BenchConfig(**bad)
