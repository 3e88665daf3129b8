"""One real `optimize` run on a trained MobileNetV2 with every pass (fused, int8 with accuracy
control, fp16, int8 in ORT format) and what each left behind; then accuracy control where plain
quantization breaks the budget."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from zoodeploy.artifact import Artifact
from zoodeploy.card import load_card
from zoodeploy.export.metadata import read_card_metadata
from zoodeploy.optimize import OptimizeConfig, QuantConfig, optimize
from zoodeploy.optimize.accuracy_control import quantize_with_accuracy_control
from zoodeploy.runtime import RunOptions, open_runner

BUDGET = 0.5  # top-1 points on the validation split


@pytest.fixture(scope="module")
def all_passes(trained, tmp_path_factory):
    artifact = tmp_path_factory.mktemp("optimize") / "mobilenet_v2"
    shutil.copytree(trained("mobilenet_v2"), artifact)
    cfg = OptimizeConfig(passes=("fuse", "int8", "fp16", "ort-format"), max_drop=BUDGET, calib_size=64,
                         threads=1)
    variants = {v.name: v for v in optimize(artifact, cfg)}
    return artifact, variants


def test_every_variant_lands_with_hash_accuracy_and_drift(all_passes):
    artifact, variants = all_passes
    assert list(variants) == ["fused", "int8", "fp16", "int8-ort"]
    card = load_card(artifact)
    for name, v in variants.items():
        assert card.variants[name] == v
        Artifact(artifact).file(v)  # exists, sha256 matches
        assert v.made_by and v.recipe
        assert v.accuracy.split == "test" and v.accuracy.n == card.data.counts["test"]
        assert v.accuracy.drop_pt is not None and v.accuracy.agreement is not None
        if v.file.endswith(".onnx"):  # the card essentials, naming this variant
            meta = read_card_metadata(artifact / v.file)
            assert meta is not None and meta["variant"] == name, meta


OUTLIER = 1000.0  # one channel of one activation scaled this much, its consumer's weights divided by it


def plant_activation_outlier(artifact) -> str:
    """Scale one output channel of a linear Conv (no activation after it: MobileNetV2's
    projection) by OUTLIER and divide the weights of the Conv that alone reads it by as much:
    the float function is unchanged, but the per-tensor activation scale of every INT8 scheme
    now flattens that tensor's other channels to zero. Returns the reading Conv's name."""
    from onnx import numpy_helper

    from zoodeploy.card import save_card
    from zoodeploy.fileio import sha256_file
    card = load_card(artifact)
    path = artifact / card.variants["fp32"].file
    model = onnx.load(str(path))
    weights = {i.name: i for i in model.graph.initializer}
    readers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in weights]
    pairs = [(a, readers[a.output[0]][0]) for a in convs if len(readers.get(a.output[0], [])) == 1
             and readers[a.output[0]][0] in convs
             and not any(t.name == "group" and t.i != 1 for t in readers[a.output[0]][0].attribute)]
    a, b = pairs[len(pairs) // 2]

    def scaled(name: str, scale: np.ndarray) -> None:
        weights[name].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights[name]) * scale, name))
    out_scale = np.ones(numpy_helper.to_array(weights[a.input[1]]).shape[0], np.float32)
    out_scale[0] = OUTLIER
    scaled(a.input[1], out_scale[:, None, None, None])
    scaled(a.input[2], out_scale)
    scaled(b.input[1], 1.0 / out_scale[None, :, None, None])
    onnx.save(model, str(path))
    card.variants["fp32"].sha256 = sha256_file(path)
    for name in set(card.variants) - {"fp32"}:
        card.variants.pop(name)  # everything else was made from the unplanted model
    save_card(artifact, card)
    return b.name


def test_accuracy_control_meets_the_budget_plain_quantization_breaks(trained, tmp_path):
    artifact = tmp_path / "mobilenet_v2"
    shutil.copytree(trained("mobilenet_v2"), artifact)
    planted = plant_activation_outlier(artifact)
    v = quantize_with_accuracy_control(artifact, QuantConfig(calib_size=64), max_drop=BUDGET,
                                       variant_name="int8-control", threads=1)
    ac = v.recipe.control
    plain = ac.steps[0]
    assert plain.kept_in_float == 0 and plain.val_drop_pt > 10 * BUDGET, ac.steps
    assert ac.met and ac.val_drop_pt <= BUDGET and ac.split == "val", ac.steps
    kept = ac.nodes_kept_in_float
    assert kept and v.recipe.nodes_to_exclude == kept and v.precision == "mixed"
    assert [r.node for r in ac.ranking][:len(kept)] == kept  # the worst-ranked nodes, in order
    assert planted in kept, (planted, kept)  # the ranking found the node that reads the outlier
    path = Artifact(artifact).file(v)  # checks the file's sha256 against the card
    meta = read_card_metadata(path)
    assert meta is not None and meta["variant"] == "int8-control", meta
    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    by_name = {n.name: n for n in model.graph.node}
    for name in kept:  # really in float: no input comes through a DequantizeLinear
        assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
                   for i in by_name[name].input), name


def test_speed_is_measured_and_a_slower_variant_says_so(all_passes):
    _, variants = all_passes
    for name in ("int8", "fp16", "int8-ort"):
        v = variants[name]
        speed = v.speed
        assert speed.reference == "fused" and v.latency["1"].p50_ms == pytest.approx(speed.p50_ms, abs=1e-3)
        slower = speed.p50_ms >= speed.reference_p50_ms
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
    config = artifact / v.recipe.required_operators_config
    assert config.is_file() and any("QuantizeLinear" in ln or "QLinearConv" in ln for ln in v.recipe.required_operators)
    report = v.recipe.mobile_usability
    assert set(report.eps) == {"NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram"}
    for ep in report.eps.values():
        assert ep.suitability in ("YES", "MAYBE", "NO") and ep.nodes > 0
    x, _ = Artifact(artifact).test_data()
    outs = []
    for name in ("int8", "int8-ort"):
        with open_runner(artifact, name, RunOptions(threads=1)) as runner:
            outs.append(runner.run(x[:16]))
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-4)  # same int8 model, ORT's own format


def test_int8_mixed_keeps_depthwise_convs_in_float_and_the_clip_before_them(all_passes, tmp_path):
    """MobileNetV2's 17 depthwise convs in float, the rest int8: the ReLU6 that ORT folds into the
    Q range before each must still clip (read through its Q -> DQ pair), so accuracy holds."""
    from zoodeploy.optimize.mixed import depthwise_convs
    artifact = tmp_path / "mobilenet_v2"
    shutil.copytree(all_passes[0], artifact)
    (v,) = optimize(artifact, OptimizeConfig(passes=("int8-mixed",), max_drop=None, calib_size=64, bench=False,
                                             threads=1))
    model = onnx.load(str(Artifact(artifact).file(v)))
    floats = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    dw = [n for n in model.graph.node if n.name in set(depthwise_convs(model))]
    assert v.precision == "mixed" and len(dw) == 17 and all(n.input[1] in floats for n in dw)
    assert set(v.recipe.nodes_to_exclude) == {n.name for n in dw}
    int8 = all_passes[1]["int8"].accuracy
    assert v.accuracy.drop_pt <= int8.drop_pt + 2 * BUDGET, (v.accuracy, int8)  # 40% top-1 before the fix
