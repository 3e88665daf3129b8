"""On an NVIDIA GPU: build engines, run them through the runtime interface, hold accuracy vs fp32.

Everything here is marked `gpu` (and `tensorrt` / needs torch_tensorrt or onnxruntime-gpu where
it says so) and skips cleanly elsewhere. Accuracy is measured on the held-out test split.
"""

import json

import numpy as np
import pytest
import torch

from zoodeploy.bench.latency import BenchConfig, measure
from zoodeploy.card import load_card, save_card
from zoodeploy.errors import ArtifactError
from zoodeploy.artifact import Artifact
from zoodeploy.evaluate import accuracy
from zoodeploy.optimize.compile import compile_variant
from zoodeploy.optimize.tensorrt import CompileConfig
from zoodeploy.runtime import EAGER, RunOptions, open_runner

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
MODEL = "mobilenet_v2"
# largest top-1 drop (percentage points) and smallest agreement with fp32 on the digits test split
BOUNDS = {"fp32": (0.3, 99.5), "fp16": (0.6, 99.0), "int8": (2.0, 96.0)}


def compiled(artifact, tmp_path, precision, **kw):
    art = artifact(MODEL)
    cfg = CompileConfig(precision=precision, max_batch=32, progress=False, timing_cache=tmp_path / "timing.cache", **kw)
    return art, compile_variant(art, cfg)


def assert_holds_accuracy(art, name, precision):
    acc = accuracy.evaluate_variants(art, [name])[name]  # fp32 reference on ONNX Runtime CPU, engine on the GPU
    drop, agreement = BOUNDS[precision]
    assert acc.drop_pt <= drop and acc.agreement >= agreement, acc
    assert load_card(art).variants[name].accuracy.n == acc.n


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_builds_runs_and_holds_accuracy(artifact, tmp_path, precision):
    art, v = compiled(artifact, tmp_path, precision)
    assert (v.name, v.runtime, v.file) == (f"trt-{precision}", "tensorrt", f"trt-{precision}.engine")
    assert (art / v.file).is_file() and not list(art.glob(".*.tmp"))
    target = v.recipe.target.model_dump()
    assert target["gpu"] == torch.cuda.get_device_name()
    assert target["compute_capability"] == "{}.{}".format(*torch.cuda.get_device_capability())
    assert v.recipe.profile.max[0] == 32 and v.validation.comparisons
    if precision == "int8":  # built from the TensorRT-scheme QDQ graph, made on the way
        assert load_card(art).variants[v.recipe.source].recipe.scheme == "tensorrt"
    assert_holds_accuracy(art, v.name, precision)


@pytest.mark.tensorrt
def test_engine_runs_any_batch_size_through_the_runtime_interface(artifact, tmp_path):
    art, v = compiled(artifact, tmp_path, "fp16")
    x, _ = Artifact(art).test_data()
    runner = open_runner(art, v.name)
    try:
        whole = runner.run(x[:100])  # beyond max batch 32: run in profile-sized slices
        singles = np.concatenate([runner.run(x[i:i + 1]) for i in range(100)])
        stats = measure(runner.run, x[:32], BenchConfig(warmup=3, window=5, min_runs=10, max_runs=50))
    finally:
        runner.close()
    assert whole.shape == (100, 10) and np.abs(whole - singles).max() < 5e-2
    assert runner.settings["runtime"] == "tensorrt" and stats.p50_ms > 0


@pytest.mark.tensorrt
def test_timing_cache_is_reused_across_builds(artifact, tmp_path):
    art, first = compiled(artifact, tmp_path, "fp32")
    _, second = compiled(lambda name: art, tmp_path, "fp16")
    cache = first.recipe.timing_cache
    assert cache["bytes_before"] == 0 and cache["bytes_after"] > 0
    assert second.recipe.timing_cache.bytes_before == cache.bytes_after


@pytest.mark.tensorrt
def test_engine_from_another_tensorrt_version_is_refused(artifact, tmp_path):
    art, v = compiled(artifact, tmp_path, "fp16")
    card = load_card(art)
    card.variants[v.name].recipe.target.tensorrt = "9.0.0"
    save_card(art, card)
    with pytest.raises(ArtifactError, match=r"built for TensorRT 9\.0\.0 .*zoodeploy compile .* --backend tensorrt"):
        open_runner(art, v.name)


@pytest.mark.tensorrt
def test_torch_tensorrt_program_saves_reloads_and_holds_accuracy(artifact, tmp_path):
    pytest.importorskip("torch_tensorrt")
    from zoodeploy.optimize.torch_tensorrt import exported_program_variant
    art = artifact(MODEL)
    _export_program(art)
    assert exported_program_variant(load_card(art)) is not None
    cfg = CompileConfig(backend="torch-tensorrt", precision="fp16", max_batch=32, progress=False,
                        timing_cache=tmp_path / "timing.cache")
    v = compile_variant(art, cfg)
    assert (v.name, v.runtime, v.file) == ("torch-trt-fp16", "torch-tensorrt", "torch-trt-fp16.pt2")
    assert_holds_accuracy(art, v.name, "fp16")  # reloaded from disk with torch.export.load


def _export_program(art):
    """The export step's exported program (.pt2), whatever its config is called."""
    from zoodeploy import export
    fmt = getattr(export, "ExportFormat", None)
    if fmt is None or not hasattr(fmt, "exported_program"):
        pytest.skip("this export step has no exported-program format yet")
    export.export_artifact(art, export.ExportConfig(format=fmt.exported_program))


@pytest.mark.parametrize("provider, precision", [("cuda", "fp32"), ("tensorrt", "fp32")])
def test_onnxruntime_gpu_providers_really_run_and_match_cpu(artifact, provider, precision):
    import onnxruntime

    from zoodeploy.runtime.ort import CUDA, TENSORRT
    needed = CUDA if provider == "cuda" else TENSORRT
    if needed not in onnxruntime.get_available_providers():
        pytest.skip(f"onnxruntime-gpu with {needed} is not installed")
    art = artifact(MODEL)
    x, _ = Artifact(art).test_data()
    extra = (TENSORRT,) if provider == "tensorrt" else ()  # ORT's TensorRT EP in front of CUDA
    runner = open_runner(art, precision, RunOptions(device="cuda", extra_providers=extra))
    try:
        gpu = runner.run(x[:64])
        assert needed in runner.settings["providers"]
    finally:
        runner.close()
    cpu = open_runner(art, precision).run(x[:64])
    assert (gpu.argmax(1) == cpu.argmax(1)).mean() >= 0.98 and np.abs(gpu - cpu).max() < 5e-2


@pytest.mark.tensorrt
def test_fp16_engine_is_not_slower_than_eager_cuda(artifact, tmp_path):
    """A gross-regression guard with a wide margin; the real ratios are in benchmarks/gpu_baselines.py."""
    art, v = compiled(artifact, tmp_path, "fp16")
    x, _ = Artifact(art).test_data()
    cfg = BenchConfig(warmup=5, window=10, min_runs=20, max_runs=200)
    p50 = {}
    for name, options in ((v.name, None), (EAGER, RunOptions(device="cuda"))):
        runner = open_runner(art, name, options)
        try:
            p50[name] = measure(runner.run, x[:32], cfg).p50_ms
        finally:
            runner.close()
    assert p50[v.name] < 2.0 * p50[EAGER], json.dumps(p50)
