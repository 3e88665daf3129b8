"""The deployment gate (`zoodeploy check`) through real subprocesses: it passes on the real
variants and fails, one line per variant and metric, on planted regressions: a variant with
wrong weights, and a variant slowed by extra real work inside its graph."""

import json
import shutil

import numpy as np
import onnx
import pytest
from cli_support import run_cli
from onnx import helper, numpy_helper

from zoodeploy.artifact import Artifact
from zoodeploy.card import load_card
from zoodeploy.gate import GateConfig, LatencyBaseline, check
from zoodeploy.errors import GateError, ZoodeployError
from zoodeploy.recipes import CopyRecipe

FAST = ["--max-seconds", "4"]


def perturb_weights(src, dst, seed=0):
    """A copy with wrong weights: every weight tensor gets noise as large as its own spread."""
    model = onnx.load(str(src))
    rng = np.random.default_rng(seed)
    for init in [t for t in model.graph.initializer if len(t.dims) >= 2]:
        w = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(w + rng.standard_normal(w.shape).astype(w.dtype) * w.std(), init.name))
    onnx.save(model, str(dst))


def slow_down(src, dst, convs=4, channels=32):
    """A copy that also runs `convs` 3x3 convolutions on the input and adds 0 x their mean to
    the logits: real work that depends on the input (nothing to constant-fold), same outputs."""
    model = onnx.load(str(src))
    g = model.graph
    out = g.output[0].name
    for node in g.node:
        node.output[:] = [f"{out}_pre" if o == out else o for o in node.output]
    rng = np.random.default_rng(0)
    prev, c_in = g.input[0].name, 3
    for i in range(convs):
        w = (rng.standard_normal((channels, c_in, 3, 3)) * 0.1).astype(np.float32)
        g.initializer.append(numpy_helper.from_array(w, f"slow_w{i}"))
        g.node.append(helper.make_node("Conv", [prev, f"slow_w{i}"], [f"slow_{i}"], pads=[1, 1, 1, 1]))
        prev, c_in = f"slow_{i}", channels
    g.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), "slow_zero"))
    g.node.extend([helper.make_node("ReduceMean", [prev], ["slow_mean"], keepdims=0),
                   helper.make_node("Mul", ["slow_mean", "slow_zero"], ["slow_nothing"]),
                   helper.make_node("Add", [f"{out}_pre", "slow_nothing"], [out])])
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def plant(art, name, file, make, source):
    make(art / card_file(art, source), art / file)
    v = load_card(art).variants[source]
    handle = Artifact(art)
    handle.add_variant(handle.new_variant(name, file, precision=v.precision, runtime="onnxruntime",
                                          made_by=f"planted regression from {v.file}",
                                          recipe=CopyRecipe(source=v.file)))


def card_file(art, name):
    return load_card(art).variants[name].file


def fails(r):
    return [ln for ln in r.stderr.splitlines() if ln.startswith("FAIL ")]


def test_gate_passes_real_variants_and_fails_planted_regressions(optimized, tmp_path):
    art = tmp_path / "lenet5"
    shutil.copytree(optimized("lenet5"), art)
    baseline = tmp_path / "baseline.json"
    gate = ["check", art, "--max-drop", "1.5", "--baseline", baseline, *FAST]

    # batch 8: LeNet-5 at batch 1 runs in ~65 us, where per-call noise once read fused at 1.66x fp32
    # under the suite's load and failed the real variant; at batch 8 the work dominates the call
    r = run_cli(*gate, "--update-baseline", "--threads", "1", "--batch", "8")
    assert r.returncode == 0, r.stdout + r.stderr
    stored = LatencyBaseline.model_validate_json(baseline.read_text())
    assert set(stored.ratios) == {"fused", "int8"} and stored.threads == 1 and stored.batch == 8

    r = run_cli(*gate, "--max-slowdown", "2", "--json")  # threads and batch come from the baseline
    assert r.returncode == 0, r.stdout + r.stderr
    assert not fails(r)
    before = json.loads(r.stdout)

    plant(art, "perturbed", "perturbed.onnx", perturb_weights, "fp32")
    plant(art, "int8", "int8-slow.onnx", slow_down, "int8")  # same name: the regression hits int8
    r = run_cli(*gate, "--max-slowdown", "2", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = fails(r)
    assert len(lines) == 2 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("FAIL perturbed accuracy: top-1 dropped"), lines
    assert lines[1].startswith("FAIL int8 latency:") and "fp32 latency > baseline" in lines[1], lines
    report = json.loads(r.stdout)
    assert report["passed"] is False
    assert report["ratios"]["int8"] > 2 * stored.ratios["int8"]
    assert report["accuracy"]["int8"] == before["accuracy"]["int8"]  # slowed, not changed: only latency fails
    assert report["accuracy"]["perturbed"]["drop_pt"] > 1.5
    assert any("perturbed: no baseline ratio" in n for n in report["notes"])


def test_slowed_graph_computes_the_same_logits(optimized, tmp_path):
    """The planted slow variant must fail on speed alone, so it must be exactly as accurate."""
    from zoodeploy.evaluate import evaluate_variants
    art = tmp_path / "lenet5"
    shutil.copytree(optimized("lenet5"), art)
    plant(art, "slow", "slow.onnx", slow_down, "fp32")
    acc = evaluate_variants(art, ["fp32", "slow"], record=False)
    assert acc["slow"].max_abs_err == 0 and acc["slow"].agreement == 100


def test_update_is_refused_when_accuracy_fails(optimized, tmp_path):
    art = tmp_path / "lenet5"
    shutil.copytree(optimized("lenet5"), art)
    plant(art, "perturbed", "perturbed.onnx", perturb_weights, "fp32")
    fast = dict(max_seconds=1.0, window_seconds=0.05, min_runs=10)
    from zoodeploy.bench.latency import BenchConfig
    report = check(art, GateConfig(max_drop=1.5, update_baseline=True, baseline=tmp_path / "b.json",
                                   variants=["perturbed"], threads=1, timing=BenchConfig(**fast)))
    assert not report.passed and not report.updated and not (tmp_path / "b.json").exists()
    assert [f.metric for f in report.failures] == ["accuracy"]


def test_baseline_of_other_settings_is_refused(optimized, tmp_path):
    b = tmp_path / "b.json"
    b.write_text(LatencyBaseline(model="lenet5", batch=1, threads=3, ratios={"int8": 1.0}).model_dump_json())
    with pytest.raises(GateError, match="threads 3"):
        check(optimized("lenet5"), GateConfig(max_drop=1, max_slowdown=1.5, baseline=b, threads=1))
    b.write_text(LatencyBaseline(model="resnet18", batch=1, threads=1, ratios={}).model_dump_json())
    with pytest.raises(GateError, match="baseline for resnet18"):
        check(optimized("lenet5"), GateConfig(max_drop=1, max_slowdown=1.5, baseline=b))
    with pytest.raises(GateError, match="no latency baseline"):
        check(optimized("lenet5"), GateConfig(max_drop=1, max_slowdown=1.5, baseline=tmp_path / "none.json"))


@pytest.mark.parametrize("bad", [dict(max_drop=-1), dict(max_drop=1, max_slowdown=0.5),
                                 dict(max_drop=1, batch=0)])
def test_bad_gate_config(bad):
    with pytest.raises(ZoodeployError):
        GateConfig(**bad)


def test_a_baseline_from_another_cpu_class_is_refused(tmp_path):
    """INT8's ratio to fp32 differs between CPU classes (VNNI or not): never compared across them."""
    from zoodeploy.gate import _check_baseline_matches, host_isa_key
    from zoodeploy.card import ModelCard
    from zoodeploy.preprocess import Preprocessing
    other = "x86-vnni" if host_isa_key() != "x86-vnni" else "x86-avx2"
    base = LatencyBaseline(model="lenet5", isa=other, batch=1, threads=1, ratios={"int8": 0.5})
    card = ModelCard(name="lenet5", num_classes=10, labels=[str(i) for i in range(10)],
                     preprocessing=Preprocessing.for_size(32))
    with pytest.raises(GateError, match=f"measured on a {other} CPU, this one is {host_isa_key()}"):
        _check_baseline_matches(base, card, GateConfig(max_drop=1.0, max_slowdown=2.0), tmp_path / "b.json")
    _check_baseline_matches(base.model_copy(update={"isa": host_isa_key()}), card,
                            GateConfig(max_drop=1.0, max_slowdown=2.0), tmp_path / "b.json")
