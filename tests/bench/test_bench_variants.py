"""`bench_variants` on real exported models: what it records, and that its figures agree with an
independent timing of the same ONNX files by plain ONNX Runtime at the same settings."""

import shutil
import time

import numpy as np
import onnxruntime as ort
import pytest

from zoodeploy.bench import BenchConfig, BenchOptions, bench_variants
from zoodeploy.bench.variants import timing_input
from zoodeploy.card import load_card
from zoodeploy.errors import ZoodeployError

FAST = BenchConfig(warmup=5, window=5, window_seconds=0.05, min_runs=20, max_seconds=3.0)
SHORT = BenchConfig(warmup=2, window=5, window_seconds=0.01, min_runs=10, max_seconds=1.0)  # bookkeeping only


def test_bench_records_each_variant_and_the_eager_baseline(optimized, tmp_path):
    art = tmp_path / "lenet5"
    shutil.copytree(optimized("lenet5"), art)
    result = bench_variants(art, BenchOptions(batches=(1, 4), threads=1, timing=SHORT))
    card = load_card(art)
    assert set(result.variants) == {"fp32", "fused", "int8"} and set(result.eager) == {1, 4}
    for b in (1, 4):
        eager = card.eager_latency[str(b)]
        assert eager.settings.runtime == "torch" and eager.speedup_vs_eager == 1.0
        for name in ("fp32", "fused", "int8"):
            s = card.variants[name].latency[str(b)]
            assert s == result.variants[name][b]
            assert s.batch == b and s.runs >= SHORT.min_runs and 0 < s.p50_ms <= s.p90_ms <= s.p99_ms
            assert s.speedup_vs_eager == pytest.approx(eager.p50_ms / s.p50_ms)
            assert s.throughput == pytest.approx(b * 1000 / s.mean_ms)
            # the same thread count for every backend, and the ORT session settings on record
            assert s.settings.intra_op_threads == eager.settings.intra_op_threads == 1
            assert s.settings.graph_optimization == "ORT_ENABLE_ALL" and s.settings.spinning is True
            assert s.settings.run_id == eager.settings.run_id == result.run_id
            assert set(s.settings.interleaved_with) == {"eager", "fp32", "fused", "int8"} - {name}
            assert s.settings.process_peak_rss_mb == result.peak_rss_mb > 50


def test_a_second_run_replaces_a_variants_figures_at_its_batch_sizes(optimized, tmp_path):
    """Rows are by batch size: a later run at batch 2 and batch 4 replaces those rows, keeps batch 1
    (run concurrently or one after the other, no command's figures are lost)."""
    art = tmp_path / "lenet5"
    shutil.copytree(optimized("lenet5"), art)
    bench_variants(art, BenchOptions(batches=(1, 4), threads=1, timing=SHORT))
    first = load_card(art).variants["int8"].latency
    second = bench_variants(art, BenchOptions(variants=["int8"], batches=(2, 4), threads=1, eager=False, timing=SHORT))
    card = load_card(art)
    rows = card.variants["int8"].latency
    assert set(rows) == {"1", "2", "4"} and rows["1"] == first["1"]  # batch 1 kept from the first run
    assert rows["4"] == second.variants["int8"][4] != first["4"]  # batch 4 from the second run
    assert set(card.variants["fp32"].latency) == {"1", "4"}  # not measured: untouched
    assert set(card.eager_latency) == {"1", "4"}


def test_timed_input_is_real_test_images(digits):
    from zoodeploy.models.data import digits_preprocessing
    x = digits.test.arrays(digits_preprocessing(32))
    assert np.array_equal(timing_input(x, 8), x[:8])
    big = timing_input(x, len(x) + 3)
    assert np.array_equal(big[len(x):], x[:3])  # a batch larger than the split repeats it


@pytest.mark.parametrize("bad", [dict(batches=()), dict(batches=(0,)), dict(threads=0), dict(device="tpu")])
def test_bad_options_are_refused(bad):
    with pytest.raises(ZoodeployError):
        BenchOptions(**bad)


def _plain_session(path, settings):
    """An InferenceSession built from the settings the bench recorded, by hand."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = settings.intra_op_threads
    so.inter_op_num_threads = settings.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings.graph_optimization)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
    return ort.InferenceSession(str(path), so, providers=settings.providers)


def _plain_p50(sessions, x, runs=150, block=15):
    """Median latency of each session, timed with perf_counter in interleaved blocks."""
    times = {n: [] for n in sessions}
    for s in sessions.values():
        for _ in range(10):
            s.run(None, {"input": x})
    for _ in range(runs // block):
        for n, s in sessions.items():
            s.run(None, {"input": x})
            for _ in range(block):
                t0 = time.perf_counter()
                s.run(None, {"input": x})
                times[n].append(time.perf_counter() - t0)
    return {n: float(np.median(t)) * 1000 for n, t in times.items()}


def test_bench_agrees_with_plain_onnxruntime(optimized, digits):
    """Bench and an independent perf_counter loop over the same files, alternated three times so
    machine noise hits both: the fp32/int8 ratio must agree within 1.5x, absolute p50 within 2.5x."""
    art = optimized("mobilenet_v2")
    card = load_card(art)
    x = np.ascontiguousarray(digits.test.arrays(card.preprocessing)[:8])
    ours, plain = [], []
    for _ in range(3):
        result = bench_variants(art, BenchOptions(variants=["fp32", "int8"], batches=(8,), threads=1, eager=False,
                                                  timing=FAST), record=False)
        rows = {n: result.variants[n][8] for n in ("fp32", "int8")}
        assert all(r.settings.intra_op_threads == 1 for r in rows.values())
        ours.append({n: r.p50_ms for n, r in rows.items()})
        sessions = {n: _plain_session(art / card.variants[n].file, rows[n].settings) for n in rows}
        plain.append(_plain_p50(sessions, x))
    med = lambda runs, n: float(np.median([r[n] for r in runs]))  # noqa: E731
    ratio_ours = med(ours, "fp32") / med(ours, "int8")
    ratio_plain = med(plain, "fp32") / med(plain, "int8")
    print(f"\nfp32/int8 p50 ratio at batch 8, 1 thread: bench {ratio_ours:.3f}, plain ORT {ratio_plain:.3f}; "
          + "; ".join(f"{n} p50 bench {med(ours, n):.3f} ms, plain {med(plain, n):.3f} ms" for n in ("fp32", "int8")))
    assert 1 / 1.5 < ratio_ours / ratio_plain < 1.5, (ours, plain)
    for n in ("fp32", "int8"):
        assert 1 / 2.5 < med(ours, n) / med(plain, n) < 2.5, (n, ours, plain)
