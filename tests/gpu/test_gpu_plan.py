"""CPU-side logic of the GPU compile step: config validation, profile shapes, precision rules."""

from types import SimpleNamespace

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from zoodeploy.card import ModelCard, Precision, Variant
from zoodeploy.errors import ArtifactError, OptimizeError
from zoodeploy.optimize.tensorrt import (Backend, CompileConfig, TrtCaps, default_timing_cache, onnx_input,
                                         plan_build, profile_batches, tensorrt_qdq_variant)
from zoodeploy.optimize.torch_tensorrt import exported_program_variant, precision_kwargs, program_input_dims
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe, EngineTarget, QuantRecipe
from zoodeploy.runtime.gpu import profile_shapes

BOTH = TrtCaps(strongly_typed=True, weak_typing=True)
STRONG_ONLY = TrtCaps(strongly_typed=True, weak_typing=False)
WEAK_ONLY = TrtCaps(strongly_typed=False, weak_typing=True)


def variant(name, precision, runtime="onnxruntime", file=None, scheme=None):
    """A hand-made variant: an int8 one with a quantization recipe of `scheme`, else a copied file."""
    recipe = (QuantRecipe(source="fp32.onnx", scheme=scheme, scheme_reason="test", activation_type="QInt8",
                          weight_type="QInt8", reduce_range=False, per_channel=True, symmetric_activations=True,
                          calibration="minmax", calib_size=8, calib_data="test", onnxruntime="test")
              if scheme else CopyRecipe(source="test"))
    return Variant(name=name, file=file or f"{name}.onnx", sha256="0" * 64, precision=precision, runtime=runtime,
                   made_by="test", recipe=recipe)


def card(*variants):
    return ModelCard(name="lenet5", num_classes=10, labels=[str(i) for i in range(10)],
                     preprocessing=Preprocessing(size=32, resize=32),
                     variants={v.name: v for v in variants})


FP32 = variant("fp32", "fp32")
FP16 = variant("fp16", "fp16")
INT8_TRT = variant("int8-trt", "int8", scheme="tensorrt")
INT8_CPU = variant("int8", "int8", scheme="u8s8_reduce_range")


# --- CompileConfig ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, needle", [
    ({"max_batch": 0}, "--max-batch must be at least 1"),
    ({"max_batch": 4, "opt_batch": 8}, "--opt-batch must be between 1 and --max-batch (4)"),
    ({"workspace_gb": 0}, "--workspace must be a positive"),
    ({"backend": "torch-tensorrt", "precision": "int8"}, "for int8 use --backend tensorrt"),
    ({"precision": "fp8"}, "precisions: fp32, fp16, int8"),
    ({"backend": "tvm"}, "backends: tensorrt, torch-tensorrt"),
])
def test_config_refuses_bad_values_in_one_line(kwargs, needle):
    with pytest.raises(OptimizeError) as e:
        CompileConfig(**kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_config_refuses_a_directory_as_timing_cache(tmp_path):
    with pytest.raises(OptimizeError, match="is a directory"):
        CompileConfig(timing_cache=tmp_path)


@pytest.mark.parametrize("backend, precision, name", [
    ("tensorrt", "fp32", "trt-fp32"), ("tensorrt", "int8", "trt-int8"),
    ("torch-tensorrt", "fp16", "torch-trt-fp16"), (Backend.tensorrt, Precision.fp16, "trt-fp16")])
def test_variant_names(backend, precision, name):
    cfg = CompileConfig(backend=backend, precision=precision)
    assert cfg.variant_name == name and isinstance(cfg.precision, Precision)


# --- profile shapes ------------------------------------------------------------------------------

def test_profile_for_a_dynamic_batch():
    p = profile_shapes(["batch", 3, 32, 32], max_batch=64)
    assert (p.min, p.opt, p.max) == ((1, 3, 32, 32), (8, 3, 32, 32), (64, 3, 32, 32))
    assert profile_batches(p) == (1, 8, 64)


def test_profile_opt_never_exceeds_max_and_can_be_chosen():
    assert profile_shapes([None, 3, 8, 8], max_batch=4).batches == (1, 4, 4)
    assert profile_shapes(["N", 3, 8, 8], max_batch=32, opt_batch=16).batches == (1, 16, 32)


def test_profile_of_a_fixed_batch_graph_is_that_batch():
    p = profile_shapes([16, 3, 224, 224], max_batch=64)
    assert p.batches == (16, 16, 16) and p.max == (16, 3, 224, 224) and profile_batches(p) == (16,)


@pytest.mark.parametrize("dims, max_batch, opt", [
    (["N", 3, "H", 32], 8, None), (["N", 3, 32], 8, None), (["N", 3, 32, 32], 0, None), (["N", 3, 32, 32], 8, 9)])
def test_profile_refuses_what_tensorrt_cannot_take(dims, max_batch, opt):
    with pytest.raises(ArtifactError):
        profile_shapes(dims, max_batch, opt)


def test_profile_round_trips_through_the_card_recipe():
    p = profile_shapes(["N", 3, 32, 32], max_batch=16)
    assert type(p).from_dict(p.to_dict()) == p


def _onnx(tmp_path, batch):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3, 8, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["input"], ["logits"])], "g", [x], [y]))
    path = tmp_path / f"m{batch}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("batch", ["batch", 4])
def test_onnx_input_reads_symbolic_and_fixed_batch(tmp_path, batch):
    assert onnx_input(_onnx(tmp_path, batch)) == ("input", [batch, 3, 8, 8])


# --- precision rules -----------------------------------------------------------------------------

def test_fp32_builds_the_fp32_graph_without_tf32():
    plan = plan_build(card(FP32, FP16, INT8_TRT), "fp32", BOTH)
    assert (plan.source, plan.strongly_typed, plan.flags, plan.tf32) == ("fp32", True, (), False)
    assert plan_build(card(FP32), "fp32", WEAK_ONLY).strongly_typed is False


def test_fp16_prefers_the_fp16_graph_strongly_typed():
    plan = plan_build(card(FP32, FP16), "fp16", BOTH)
    assert (plan.source, plan.strongly_typed, plan.flags) == ("fp16", True, ())


def test_fp16_from_the_fp32_graph_uses_the_fp16_flag():
    plan = plan_build(card(FP32), "fp16", BOTH)
    assert (plan.source, plan.strongly_typed, plan.flags) == ("fp32", False, ("FP16",))
    # a TensorRT without strong typing still builds the fp16 graph, weakly typed
    assert plan_build(card(FP32, FP16), "fp16", WEAK_ONLY).flags == ("FP16",)


def test_fp16_without_weak_typing_needs_an_fp16_graph():
    with pytest.raises(OptimizeError, match="fp16 ONNX graph"):
        plan_build(card(FP32), "fp16", STRONG_ONLY)
    assert plan_build(card(FP32, FP16), "fp16", STRONG_ONLY).source == "fp16"


def test_int8_uses_only_the_tensorrt_scheme_qdq_graph():
    plan = plan_build(card(FP32, INT8_CPU, INT8_TRT), "int8", BOTH)
    assert (plan.source, plan.strongly_typed, plan.flags) == ("int8-trt", False, ("INT8", "FP16"))
    assert plan_build(card(FP32, INT8_TRT), "int8", STRONG_ONLY).strongly_typed is True
    assert tensorrt_qdq_variant(card(FP32, INT8_CPU)) is None
    with pytest.raises(OptimizeError, match="explicit-quantization"):
        plan_build(card(FP32, INT8_CPU), "int8", BOTH)  # a CPU-scheme (asymmetric) graph is not used


@pytest.mark.parametrize("precision, source, needle", [
    ("fp16", "int8-trt", "build it with --precision int8"),
    ("int8", "fp32", "explicit-quantization"),
    ("fp32", "eager-pt2", "TensorRT builds from an ONNX variant"),
    ("fp32", "nope", "no variant 'nope'"),
])
def test_explicit_source_must_fit_the_precision(precision, source, needle):
    c = card(FP32, INT8_TRT, variant("eager-pt2", "fp32", runtime="torch", file="program.pt2"))
    with pytest.raises((OptimizeError, ArtifactError), match=needle):
        plan_build(c, precision, BOTH, source)


def test_caps_follow_what_the_tensorrt_module_offers():
    def module(network_flags, builder_flags):
        return SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(**dict.fromkeys(network_flags, 0)),
                               BuilderFlag=SimpleNamespace(**dict.fromkeys(builder_flags, 0)))
    assert TrtCaps.of(module(["STRONGLY_TYPED"], ["FP16", "INT8", "TF32"])) == BOTH
    assert TrtCaps.of(module(["STRONGLY_TYPED"], ["TF32"])) == STRONG_ONLY
    assert TrtCaps.of(module([], ["FP16", "INT8"])) == WEAK_ONLY


def test_default_timing_cache_is_per_gpu_and_version(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    h100 = default_timing_cache(EngineTarget(tensorrt="10.8.0.43", gpu="NVIDIA H100 80GB HBM3",
                                             compute_capability="9.0"))
    a100 = default_timing_cache(EngineTarget(tensorrt="10.8.0.43", gpu="NVIDIA A100-SXM4-40GB",
                                             compute_capability="8.0"))
    assert h100 != a100 and h100.parent == tmp_path / "zoodeploy" / "tensorrt"
    assert h100.name == "timing-trt10.8.0.43-sm90-nvidia-h100-80gb-hbm3.cache"


# --- torch-tensorrt --------------------------------------------------------------------------------

def test_precision_kwargs_follow_the_installed_api():
    old = {"enabled_precisions", "disable_tf32", "workspace_size"}
    new = {"enable_autocast", "autocast_low_precision_type", "disable_tf32"}
    assert precision_kwargs(old, Precision.fp16) == {"disable_tf32": False,
                                                     "enabled_precisions": {torch.float16, torch.float32}}
    assert precision_kwargs(new, Precision.fp16) == {"disable_tf32": False, "enable_autocast": True,
                                                     "autocast_low_precision_type": torch.float16}
    assert precision_kwargs(new, Precision.fp32) == {"disable_tf32": True}
    assert precision_kwargs(old, Precision.fp32)["enabled_precisions"] == {torch.float32}
    with pytest.raises(OptimizeError, match="neither enabled_precisions nor enable_autocast"):
        precision_kwargs({"disable_tf32"}, Precision.fp16)


def test_program_input_dims_of_a_real_exported_program():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    x = torch.randn(2, 3, 16, 16)
    dynamic = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    dims = program_input_dims(dynamic)
    assert isinstance(dims[0], str) and dims[1:] == [3, 16, 16]
    assert profile_shapes(dims, max_batch=32).batches == (1, 8, 32)


def test_the_exported_program_is_found_by_its_file():
    pt2 = variant("program", "fp32", runtime="torch", file="program.pt2")
    assert exported_program_variant(card(FP32, pt2)) == "program"
    compiled = variant("torch-trt-fp16", "fp16", runtime="torch-tensorrt", file="torch-trt-fp16.pt2")
    assert exported_program_variant(card(FP32, compiled)) is None
