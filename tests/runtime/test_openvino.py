"""The OpenVINO runner against ONNX Runtime on the same file and images, its explicit settings,
an OpenVINO variant as one more row (evaluate, bench, package), and ONNX Runtime when openvino
cannot be imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from zoodeploy.errors import ArtifactError
from zoodeploy.artifact import Artifact
from zoodeploy.export.validate import validation_samples
from zoodeploy.runtime import RunOptions, open_runner

pytest.importorskip("openvino")
from zoodeploy.runtime.openvino import OpenVinoRunner  # noqa: E402


@pytest.fixture(scope="module")
def ov_artifact(optimized, tmp_path_factory) -> Path:
    """lenet5 with fused and int8 and their OpenVINO rows fp32-ov and int8-ov (made, not measured)."""
    from zoodeploy.optimize import OptimizeConfig, optimize
    out = tmp_path_factory.mktemp("ov") / "lenet5"
    shutil.copytree(optimized("lenet5"), out)
    optimize(out, OptimizeConfig(passes=("ov-fp32", "ov-int8"), max_drop=None, bench=False, threads=1))
    return out


def _logits(artifact: Path, variant: str, x: np.ndarray) -> tuple[np.ndarray, dict]:
    runner = open_runner(artifact, variant, RunOptions(threads=1))
    try:
        return runner.run(x), runner.settings
    finally:
        runner.close()


def test_openvino_matches_onnxruntime_on_the_same_file(ov_artifact):
    from zoodeploy.card import load_card
    card = load_card(ov_artifact)
    x = validation_samples(Artifact(ov_artifact), 64).x
    want, _ = _logits(ov_artifact, "fp32", x)
    got, settings = _logits(ov_artifact, "fp32-ov", x)
    assert settings["runtime"] == "openvino"
    rel = np.abs(got - want).max(axis=1) / np.abs(want).max(axis=1)
    assert rel.max() <= 1e-4, rel.max()
    int8_ort, _ = _logits(ov_artifact, "int8", x)
    int8_ov, _ = _logits(ov_artifact, "int8-ov", x)
    assert (int8_ov.argmax(1) == int8_ort.argmax(1)).mean() >= 0.95
    assert card.variants["int8-ov"].sha256 == card.variants["int8"].sha256  # the very same file


def test_settings_state_f32_threads_and_streams_explicitly(ov_artifact):
    _, settings = _logits(ov_artifact, "fp32-ov", validation_samples(Artifact(ov_artifact), 2).x)
    assert settings["precision"] == "f32" and settings["intra_op_threads"] == 1
    cfg = settings["config"]  # read back from the compiled model, not what was asked
    assert cfg["INFERENCE_PRECISION_HINT"] == "f32" and cfg["NUM_STREAMS"] == "1"
    assert cfg["INFERENCE_NUM_THREADS"] == "1" and cfg["PERFORMANCE_HINT"] == "LATENCY"


def test_an_openvino_variant_evaluates_and_benches_as_a_row(ov_artifact, tmp_path):
    from zoodeploy.bench.latency import BenchConfig
    from zoodeploy.bench.variants import BenchOptions, bench_variants
    from zoodeploy.artifact import select_variant
    from zoodeploy.card import load_card
    from zoodeploy.evaluate.accuracy import evaluate_variants
    art = tmp_path / "a"
    shutil.copytree(ov_artifact, art)
    acc = evaluate_variants(art, ["fp32", "fp32-ov", "int8-ov"], options=RunOptions(threads=1))
    assert acc["fp32-ov"].top1 == pytest.approx(acc["fp32"].top1) and acc["fp32-ov"].agreement == 100.0
    timing = BenchConfig(warmup=2, window=5, min_runs=10, max_runs=50, max_seconds=2.0)
    result = bench_variants(art, BenchOptions(variants=["fp32", "fp32-ov"], batches=(1,), threads=1, eager=False,
                                              timing=timing))
    row = result.variants["fp32-ov"][1]
    assert row.settings.runtime == "openvino" and row.settings.config["INFERENCE_PRECISION_HINT"] == "f32"
    assert "VNNI" in row.settings.host  # the CPU features the figure came from
    card = load_card(art)
    assert select_variant(card, 1.0, 1) in ("fp32", "fp32-ov")  # one more row for the selection


def test_a_graph_openvino_cannot_read_is_one_line_naming_the_op(tmp_path):
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.example", 1)]), str(path))
    with pytest.raises(ArtifactError) as e:
        OpenVinoRunner(path, "odd", RunOptions(threads=1))
    assert "NoSuchOp" in str(e.value) and "\n" not in str(e.value)


def _extract(bundle: Path, into: Path) -> Path:
    with tarfile.open(bundle) as t:
        t.extractall(into, filter="data")
    return next(into.iterdir())


def test_openvino_bundle_names_openvino_and_checks_itself_with_it(ov_artifact, tmp_path):
    from zoodeploy.package import PackageConfig, package
    b = package(ov_artifact, tmp_path / "ov.tar.gz", PackageConfig(variant="fp32", runtime="openvino", samples=4))
    assert b.manifest["variant"] == "fp32-ov" and b.manifest["runtime"]["engine"] == "openvino"
    assert b.manifest["runtime"]["openvino_config"]["INFERENCE_PRECISION_HINT"] == "f32"
    root = _extract(b.path, tmp_path / "x")
    reqs = (root / "requirements.txt").read_text()
    assert "openvino>=" in reqs and "onnxruntime" not in reqs.split("\n", 2)[2]
    r = subprocess.run([sys.executable, str(root / "predict.py"), "--self-check", "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "openvino" in json.loads(r.stdout)["runtime"]
    ort = package(ov_artifact, tmp_path / "ort.tar.gz", PackageConfig(variant="fp32-ov", runtime="onnxruntime",
                                                                      samples=4))
    assert ort.manifest["variant"] == "fp32" and "onnxruntime" in ort.manifest["runtime"]["requirements"]


def test_onnxruntime_runs_onnx_variants_when_openvino_cannot_be_imported(ov_artifact):
    code = f"""
import sys
sys.modules['openvino'] = None  # what an image without the package looks like to Python
import numpy as np
from zoodeploy.errors import MissingDependencyError
from zoodeploy.runtime import RunOptions, open_runner
r = open_runner({str(ov_artifact)!r}, 'fp32', RunOptions(threads=1))
r.run(np.zeros((1, *r.input_shape), np.float32))
print(r.settings['runtime'])
try:
    open_runner({str(ov_artifact)!r}, 'fp32-ov', RunOptions(threads=1))
except MissingDependencyError as e:
    print('refused:', e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "onnxruntime"
    assert lines[1].startswith("refused: OpenVINO") and "pip install 'openvino" in lines[1] and len(lines) == 2


def test_a_card_selecting_an_openvino_row_is_what_serving_predict_and_package_run(ov_artifact, digits, tmp_path):
    from zoodeploy.card import load_card, update_card
    from zoodeploy.package import PackageConfig, package
    from zoodeploy.predict import PredictConfig, predict
    from zoodeploy.artifact import resolve_variant
    art = tmp_path / "a"
    shutil.copytree(ov_artifact, art)
    with update_card(art) as card:  # as `build` records it when int8-ov is the fastest within budget
        card.selected = "int8-ov"
    card = load_card(art)
    assert resolve_variant(card).name == "int8-ov"  # the variant `bentoml serve` loads, through open_runner
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        digits.test.image(i).save(folder / f"{i}.png")
    out = tmp_path / "preds.jsonl"
    s = predict(art, [folder], PredictConfig(out=out, logits=True, threads=1))
    assert (s.variant, s.rows, s.errors) == ("int8-ov", 4, 0)
    rows = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["path"])
    got = np.array([[r[f"logit_{lab}"] for lab in card.labels] for r in rows])
    want, settings = _logits(art, "selected", digits.test.arrays(card.preprocessing)[:4])
    assert settings["runtime"] == "openvino"
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # predict ran OpenVINO, not ONNX Runtime
    b = package(art, tmp_path / "sel.tar.gz", PackageConfig(samples=4))
    assert b.manifest["variant"] == "int8-ov" and b.manifest["runtime"]["engine"] == "openvino"
