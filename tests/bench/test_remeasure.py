"""Figures a user can trust: a timing that did not settle is measured again (after a pause, with
longer windows) and replaced; eager PyTorch timed at 1 and N threads keeps the better row. On a fake
clock (bench.latency's injectable one): no model runs."""

import pytest

from zoodeploy.bench.latency import BenchConfig, measure_many
from zoodeploy.bench.variants import keep_better_eager, remeasure_unstable, retry_config
from zoodeploy.card import LatencyStats, RunSettings


CFG = BenchConfig(warmup=2, window=5, window_seconds=0.01, windows=3, stability=0.05, min_runs=20, max_runs=10_000,
                  max_seconds=0.5)


def test_an_unstable_row_is_measured_again_and_replaced_when_it_settles(clock):
    calls_made = {"n": 0}

    def busy_then_quiet():  # the machine is busy for the first 0.5 s: each run slower than the last
        calls_made["n"] += 1
        clock.now += 0.001 * (1.03 ** calls_made["n"] if clock.now < 0.5 else 1.0)

    def steady():
        clock.now += 0.001

    calls = {"a": busy_then_quiet, "b": steady}
    rows = measure_many(calls, 1, CFG)
    assert rows["a"].settings.stable is False and rows["b"].settings.stable is True
    before_b = rows["b"]
    rows = remeasure_unstable(calls, rows, 1, CFG)
    assert rows["a"].settings.stable is True and rows["a"].p50_ms == pytest.approx(1.0)
    assert rows["b"] is before_b  # a settled row is not timed again
    assert rows["a"].settings.bench.settle_seconds == retry_config(CFG).settle_seconds


def _row(ms, stable=True, others=()):
    return LatencyStats(batch=1, runs=10, p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms, throughput=1000 / ms,
                        settings=RunSettings(runtime="torch", stable=stable, interleaved_with=list(others)))


def test_eager_keeps_the_better_of_one_and_n_threads():
    rows = {"eager@2": _row(214.0, others=["eager@1", "fp32"]), "eager@1": _row(15.0, others=["eager@2", "fp32"]),
            "fp32": _row(5.0, others=["eager@2", "eager@1"])}
    rows = keep_better_eager(rows, (2, 1))
    assert set(rows) == {"eager", "fp32"}
    assert rows["eager"].p50_ms == 15.0 and rows["eager"].settings.intra_op_threads == 1
    assert rows["fp32"].settings.interleaved_with == ["eager"]
    # a faster but unstable row loses to a stable one
    rows = keep_better_eager({"eager@2": _row(10.0, stable=False), "eager@1": _row(15.0)}, (2, 1))
    assert rows["eager"].p50_ms == 15.0


def test_a_bench_says_one_line_per_batch_size_with_an_eta(optimized, tmp_path):
    """What a log shows of a bench (bars draw nothing there): a timestamp-free line per batch size
    timed, with its figures, which rows did not settle, and how long the rest will take."""
    import shutil

    from zoodeploy.bench.variants import BenchOptions, bench_variants
    art = tmp_path / "a"
    shutil.copytree(optimized("lenet5"), art)
    lines: list[str] = []
    quick = BenchConfig(warmup=2, window=3, window_seconds=0.005, min_runs=6, max_runs=30, max_seconds=0.5)
    bench_variants(art, BenchOptions(variants=["fp32", "fuse"], batches=(1, 2), threads=1, eager=False, timing=quick),
                   record=False, say=lines.append)
    assert [ln.split(":")[0] for ln in lines] == ["timed batch 1", "timed batch 2"]
    assert "fp32 " in lines[0] and "fused " in lines[0]  # `fuse`, the pass, names the variant it made
    assert "(1/2, " in lines[0] and "ETA" in lines[0] and lines[1].endswith("ETA 0s)")
