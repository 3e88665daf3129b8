"""CPU-side logic of the GPU runtimes: engine target checks, batching, what is missing, ORT providers."""

import importlib.util
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard, Variant, save_card
from zoodeploy.errors import ArtifactError, MissingDependencyError
from zoodeploy.preprocess import Preprocessing
from zoodeploy.runtime import open_runner
from zoodeploy.runtime.backends import RUNTIMES, runner_factory
from zoodeploy.runtime import RunOptions
from zoodeploy.target import needs_gpu
from zoodeploy.runtime.ort import CUDA, TENSORRT, check_providers_in_use, providers_for, tensorrt_ep_options
from zoodeploy.recipes import EngineTarget
from zoodeploy.runtime.gpu import (batch_chunks, check_engine_target, engine_target, import_gpu_package,
                                   import_tensorrt, require_cuda, run_chunked)
from zoodeploy.recipes import CopyRecipe, TensorRTRecipe
from zoodeploy.runtime.torch_tensorrt import import_torch_tensorrt

HAS_CUDA = torch.cuda.is_available()
H100 = EngineTarget(tensorrt="10.8.0.43", gpu="NVIDIA H100 80GB HBM3", compute_capability="9.0")
no_cuda_only = pytest.mark.skipif(HAS_CUDA, reason="checks the message on a machine without a GPU")


def engine_recipe(target: EngineTarget | None) -> TensorRTRecipe | CopyRecipe:
    """A hand-made engine recipe built for `target` (None: a recipe that records no target)."""
    if target is None:
        return CopyRecipe(source="test")
    return TensorRTRecipe(source="fp16", source_sha256="0" * 64, strongly_typed=False, flags=["FP16"], tf32=False,
                          profile={"min": [1, 3, 32, 32], "opt": [8, 3, 32, 32], "max": [64, 3, 32, 32]},
                          workspace_gb=4.0, target=target)


def engine_variant(runtime="tensorrt", precision="fp16", target=H100, name=None):
    return Variant(name=name or f"trt-{precision}", file=f"{name or 'trt-' + precision}.engine", sha256="0" * 64,
                   precision=precision, runtime=runtime, made_by="test", recipe=engine_recipe(target))


def test_needs_gpu_only_for_engines():
    assert needs_gpu(engine_variant()) and needs_gpu(engine_variant("torch-tensorrt"))
    onnx_fp16 = Variant(name="fp16", file="fp16.onnx", sha256="0" * 64, precision="fp16", runtime="onnxruntime",
                        made_by="test", recipe=CopyRecipe(source="test"))
    assert not needs_gpu(onnx_fp16)


def test_gpu_runtimes_are_registered_without_tensorrt_installed():
    assert "tensorrt" in RUNTIMES and "torch-tensorrt" in RUNTIMES
    # their modules import without TensorRT: opening an engine is what names the missing package
    assert callable(runner_factory("tensorrt", "trt-fp16")) and callable(runner_factory("torch-tensorrt", "x"))


# --- engine targets ------------------------------------------------------------------------------

def test_engine_on_its_own_target_is_accepted():
    assert engine_target(engine_variant()) == H100
    check_engine_target(engine_variant(), H100)


@pytest.mark.parametrize("here, differs", [
    (EngineTarget(tensorrt="10.9.0.34", gpu=H100.gpu, compute_capability="9.0"), "different TensorRT version"),
    (EngineTarget(tensorrt=H100.tensorrt, gpu="NVIDIA A100-SXM4-40GB", compute_capability="8.0"), "different GPU"),
    (EngineTarget(tensorrt="10.3.0", gpu="NVIDIA L4", compute_capability="8.9"), "different TensorRT version and GPU"),
])
def test_engine_for_another_target_is_refused_with_the_rebuild_command(here, differs):
    with pytest.raises(ArtifactError) as e:
        check_engine_target(engine_variant(), here, "artifacts/r18")
    msg = str(e.value)
    assert "built for TensorRT 10.8.0.43 on NVIDIA H100 80GB HBM3 (sm_90)" in msg and here.describe() in msg
    assert differs in msg and "\n" not in msg
    assert "`zoodeploy compile artifacts/r18 --backend tensorrt --precision fp16`" in msg


def test_torch_tensorrt_program_is_refused_with_its_own_backend():
    with pytest.raises(ArtifactError, match="--backend torch-tensorrt --precision fp32"):
        check_engine_target(engine_variant("torch-tensorrt", "fp32"),
                            EngineTarget(tensorrt="11.0", gpu="NVIDIA L4", compute_capability="8.9"))


def test_engine_without_a_recorded_target_is_refused():
    with pytest.raises(ArtifactError, match="records no valid TensorRT target.*rebuild it"):
        check_engine_target(engine_variant(target=None), H100)


# --- batching within a profile -------------------------------------------------------------------

def test_batch_chunks_cover_every_row_within_the_profile():
    assert batch_chunks(10, 1, 4) == [(0, 4, 4), (4, 8, 4), (8, 10, 2)]
    assert batch_chunks(10, 4, 4) == [(0, 4, 4), (4, 8, 4), (8, 10, 4)]  # fixed batch: last one padded
    assert batch_chunks(3, 1, 64) == [(0, 3, 3)]


@pytest.mark.parametrize("lo, hi", [(1, 4), (4, 4), (1, 64)])
def test_run_chunked_gives_the_same_rows_as_one_call(lo, hi):
    x = np.random.default_rng(0).standard_normal((10, 3, 2, 2)).astype(np.float32)
    seen = []

    def run(part):
        seen.append(len(part))
        return part.reshape(len(part), -1).sum(1, keepdims=True)

    out = run_chunked(run, x, lo, hi)
    np.testing.assert_allclose(out, run(x))
    assert all(lo <= n <= hi for n in seen[:-1])


# --- what is missing, said in one line -----------------------------------------------------------------

@no_cuda_only
@pytest.mark.parametrize("check", [require_cuda, import_tensorrt, import_torch_tensorrt])
def test_no_gpu_is_reported_first(check):
    with pytest.raises(MissingDependencyError) as e:
        check()
    msg = str(e.value)
    assert msg.startswith("an NVIDIA CUDA GPU is not available") and "pip install 'zoodeploy[gpu]'" in msg


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
@pytest.mark.parametrize("check, what", [(import_tensorrt, "TensorRT"), (import_torch_tensorrt, "Torch-TensorRT")])
def test_with_a_gpu_a_missing_tensorrt_is_named(monkeypatch, check, what):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    with pytest.raises(MissingDependencyError) as e:
        check()
    assert str(e.value).startswith(f"{what} is not available: the ")
    assert "is not installed; install the gpu extra: pip install 'zoodeploy[gpu]'" in str(e.value)


def test_a_package_that_cannot_load_its_libraries_is_reported(tmp_path, monkeypatch):
    (tmp_path / "zd_broken_trt.py").write_text(
        'raise ImportError("libnvinfer.so.10: cannot open shared object file: No such file or directory")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError, match=r"cannot be imported \(libnvinfer\.so\.10: cannot open"):
        import_gpu_package("zd_broken_trt", "TensorRT")
    sys.modules.pop("zd_broken_trt", None)


@no_cuda_only
@pytest.mark.parametrize("runtime", ["tensorrt", "torch-tensorrt"])
def test_opening_an_engine_without_a_gpu_says_so(tmp_path, runtime):
    c = ModelCard(name="lenet5", num_classes=10, labels=[str(i) for i in range(10)],
                  preprocessing=Preprocessing(size=32, resize=32))
    (tmp_path / "trt-fp16.engine").write_bytes(b"not run")
    v = Artifact(tmp_path).new_variant("trt-fp16", "trt-fp16.engine", precision="fp16", runtime=runtime,
                                       made_by="test", recipe=engine_recipe(H100))
    c.variants[v.name] = v
    save_card(tmp_path, c)
    with pytest.raises(MissingDependencyError, match="NVIDIA CUDA GPU is not available"):
        open_runner(tmp_path, "trt-fp16")


# --- ONNX Runtime CUDA / TensorRT providers ---------------------------------------------------------------

@pytest.mark.skipif(CUDA in onnxruntime.get_available_providers(), reason="onnxruntime-gpu is installed")
@pytest.mark.parametrize("extra, missing", [((), CUDA), ((TENSORRT,), TENSORRT)])
def test_cpu_only_onnxruntime_refuses_gpu_providers(extra, missing):
    with pytest.raises(MissingDependencyError) as e:
        providers_for(RunOptions(device="cuda", extra_providers=extra))
    assert missing in str(e.value) and "pip install 'zoodeploy[gpu]'" in str(e.value)


def test_every_requested_accelerator_must_be_in_use():
    check_providers_in_use([TENSORRT, CUDA, "CPUExecutionProvider"], [TENSORRT, CUDA, "CPUExecutionProvider"])
    with pytest.raises(MissingDependencyError, match="TensorrtExecutionProvider .ONNX Runtime fell back to "
                                                     "CUDAExecutionProvider, CPUExecutionProvider"):
        check_providers_in_use([TENSORRT, CUDA, "CPUExecutionProvider"], [CUDA, "CPUExecutionProvider"])


@pytest.mark.parametrize("precision, fp16, int8", [("fp32", "False", "False"), ("fp16", "True", "False"),
                                                   ("int8", "True", "True")])
def test_tensorrt_ep_options_per_precision(tmp_path, monkeypatch, precision, fp16, int8):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    opts = tensorrt_ep_options(precision, "input", ["N", 3, 32, 32])
    assert (opts["trt_fp16_enable"], opts["trt_int8_enable"]) == (fp16, int8)
    assert opts["trt_profile_min_shapes"] == "input:1x3x32x32"
    assert opts["trt_profile_opt_shapes"] == "input:8x3x32x32"
    assert opts["trt_profile_max_shapes"] == "input:64x3x32x32"
    assert opts["trt_engine_cache_path"] == str(tmp_path / "zoodeploy" / "ort-tensorrt")
