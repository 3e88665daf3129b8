"""One real `optimize` run on a trained MobileNetV2 with every pass (fused, int8 with accuracy
control, fp16, int8 in ORT format) and what each left behind; then accuracy control where plain
quantization breaks the budget."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from zoodeploy.card import load_card, variant_path
from zoodeploy.evaluate.accuracy import test_arrays as held_out_arrays
from zoodeploy.optimize import OptimizeConfig, QuantConfig, optimize, quantize_with_accuracy_control
from zoodeploy.runtime import RunOptions, open_runner

BUDGET = 0.5  # top-1 points on the validation split


@pytest.fixture(scope="module")
def all_passes(trained, tmp_path_factory):
    artifact = tmp_path_factory.mktemp("optimize") / "mobilenet_v2"
    shutil.copytree(trained("mobilenet_v2"), artifact)
    cfg = OptimizeConfig(fuse=True, int8=True, fp16=True, ort_format=True, max_drop=BUDGET, calib_size=64,
                         threads=1)
    variants = {v.name: v for v in optimize(artifact, cfg)}
    return artifact, variants


def test_every_variant_lands_with_hash_accuracy_and_drift(all_passes):
    artifact, variants = all_passes
    assert list(variants) == ["fused", "int8", "fp16", "int8-ort"]
    card = load_card(artifact)
    for name, v in variants.items():
        assert card.variants[name] == v
        variant_path(artifact, v)  # exists, sha256 matches
        assert v.made_by and v.recipe
        assert v.accuracy.split == "test" and v.accuracy.n == card.data.counts["test"]
        assert v.accuracy.drop_pt is not None and v.accuracy.agreement is not None
        meta = {p.key for p in onnx.load(str(artifact / v.file)).metadata_props} if v.file.endswith(".onnx") else None
        assert meta is None or "zoodeploy.card" in meta


# saturating or coarse configurations, most likely to break the budget first; which one does
# depends on the trained weights, so each is measured until one does
BREAKING = [dict(scheme="s8s8"), dict(scheme="u8s8"), dict(scheme="s8s8", per_channel=False),
            dict(scheme="u8s8-reduce-range", per_channel=False)]


def test_accuracy_control_meets_the_budget_plain_quantization_breaks(all_passes):
    artifact, _ = all_passes
    measured = []
    for kw in BREAKING:
        v = quantize_with_accuracy_control(artifact, QuantConfig(calib_size=64, **kw), max_drop=BUDGET,
                                           variant_name="int8-control", threads=1, evaluate=False)
        ac = v.validation["accuracy_control"]
        plain = ac["steps"][0]
        assert plain["kept_in_float"] == 0
        measured.append(f"{kw}: {plain['val_drop_pt']:.2f} pt")
        if plain["val_drop_pt"] > BUDGET:
            break
    else:
        pytest.skip(f"no configuration breaks a {BUDGET} pt budget on this model here: {'; '.join(measured)}")
    assert ac["met"] and ac["val_drop_pt"] <= BUDGET and ac["split"] == "val", ac["steps"]
    kept = ac["nodes_kept_in_float"]
    assert kept and v.recipe["nodes_to_exclude"] == kept and v.precision == "mixed"
    assert [r["node"] for r in ac["ranking"]][:len(kept)] == kept  # the worst-ranked nodes, in order
    model = onnx.load(str(variant_path(artifact, v)))
    producers = {o: n for n in model.graph.node for o in n.output}
    by_name = {n.name: n for n in model.graph.node}
    for name in kept:  # really in float: no input comes through a DequantizeLinear
        assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
                   for i in by_name[name].input), name


def test_speed_is_measured_and_a_slower_variant_says_so(all_passes):
    _, variants = all_passes
    for name in ("int8", "fp16", "int8-ort"):
        v = variants[name]
        speed = v.validation["speed"]
        assert speed["reference"] == "fused" and v.latency["1"].p50_ms == pytest.approx(speed["p50_ms"], abs=1e-3)
        slower = speed["p50_ms"] >= speed["reference_p50_ms"]
        assert any("not faster" in n or "slower" in n for n in v.notes) == slower, (name, speed, v.notes)


def test_fp16_keeps_fp32_io_and_fp16_inside(all_passes):
    artifact, variants = all_passes
    model = onnx.load(str(artifact / variants["fp16"].file))
    elem = onnx.TensorProto
    assert model.graph.input[0].type.tensor_type.elem_type == elem.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == elem.FLOAT
    assert any(i.data_type == elem.FLOAT16 for i in model.graph.initializer)
    assert variants["fp16"].accuracy.agreement >= 95.0


def test_ort_format_runs_and_keeps_minimal_build_config(all_passes):
    artifact, variants = all_passes
    v = variants["int8-ort"]
    assert v.file == "int8.ort"
    config = artifact / v.recipe["required_operators_config"]
    assert config.is_file() and any("QuantizeLinear" in ln or "QLinearConv" in ln for ln in v.validation["required_operators"])
    report = v.validation["mobile_usability"]
    assert set(report["eps"]) == {"NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram"}
    for ep in report["eps"].values():
        assert ep["suitability"] in ("YES", "MAYBE", "NO") and ep["nodes"] > 0
    card = load_card(artifact)
    x, _ = held_out_arrays(card)
    outs = []
    for name in ("int8", "int8-ort"):
        runner = open_runner(artifact, name, RunOptions(threads=1))
        outs.append(runner.run(x[:16]))
        runner.close()
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-4)  # same int8 model, ORT's own format
