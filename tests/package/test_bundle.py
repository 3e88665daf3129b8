"""`package()`: what a bundle holds, that its figures are the card's, that it is written atomically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bundle_helpers import unpack

import zoodeploy.preprocess
from zoodeploy.artifact import Artifact
from zoodeploy.bench.latency import BenchConfig, measure
from zoodeploy.card import load_card, save_card
from zoodeploy.errors import ArtifactError, ValidationError, ZoodeployError
from zoodeploy.evaluate.accuracy import evaluate_variants, variant_logits
from zoodeploy.fileio import sha256_file
from zoodeploy.package import PackageConfig, TargetOutputs, package, verify_bundle
from zoodeploy.package.bundle import pick_samples
from zoodeploy.package.requirements import ModelFormat, min_onnxruntime
from zoodeploy.preprocess import Preprocessing, softmax
from zoodeploy.runtime import open_runner


def test_cpu_bundle_holds_model_card_code_and_hashes(bundles, trained, tmp_path):
    root = unpack(bundles("cpu"), tmp_path / "x")
    m = json.loads((root / "manifest.json").read_text())
    card = load_card(trained("lenet5"))
    # every file but the manifest is listed with its real hash, and nothing else is there
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(m["files"]) == on_disk
    assert all(sha256_file(root / n) == e["sha256"] for n, e in m["files"].items())
    # the model is the variant's file, byte for byte; preprocess.py is zoodeploy's, verbatim
    assert m["files"]["model.onnx"]["sha256"] == card.variants["fp32"].sha256
    assert (root / "preprocess.py").read_bytes() == Path(zoodeploy.preprocess.__file__).read_bytes()
    info = json.loads((root / "model.json").read_text())
    assert info["labels"] == card.labels and Preprocessing.from_dict(info["preprocessing"]) == card.preprocessing
    assert info["input_shape"] == ["N", 3, card.input_size, card.input_size]
    # opset and runtime needs come from the model file itself
    opset = {o.domain or "ai.onnx": o.version for o in onnx.load(str(root / "model.onnx")).opset_import}
    assert m["opset"] == opset["ai.onnx"] and m["runtime"]["opsets"] == opset
    assert m["runtime"]["built_with"]["onnxruntime"] == ort.__version__
    reqs = (root / "requirements.txt").read_text().splitlines()
    assert [r for r in reqs if not r.startswith("#")] == [f"{k}{v}" for k, v in m["runtime"]["requirements"].items()]
    assert m["source"]["variant_sha256"] == card.variants["fp32"].sha256
    assert m["source"]["data"]["source"] == "digits" and m["target"] == "cpu"


def test_samples_come_from_the_test_split_with_the_variants_outputs(bundles, trained, tmp_path):
    """Expected outputs equal the evaluate path (test split in memory -> runner) on the same images."""
    root = unpack(bundles("cpu"), tmp_path / "x")
    m = json.loads((root / "manifest.json").read_text())
    expected = json.loads((root / "samples" / "expected.json").read_text())
    art = trained("lenet5")
    card = load_card(art)
    x, y = Artifact(art).test_data()
    idx = m["samples"]["test_indices"]
    assert len(idx) == len(expected["samples"]) == 8 and len(set(y[idx])) == 8  # 8 different classes
    probs = softmax(variant_logits(art, "fp32", x[idx]))
    for s, p, label in zip(expected["samples"], probs, y[idx]):
        assert s["true_label"] == card.labels[label] and (root / s["file"]).is_file()
        assert s["top1"] == int(p.argmax())
        np.testing.assert_allclose(s["probabilities"], p, atol=1e-6)
    assert expected["tolerance"]["prob_atol"] == 1e-4


def test_measured_accuracy_and_latency_travel_into_the_manifest(artifact, tmp_path):
    art = artifact("lenet5")
    evaluate_variants(art, ["fp32"])
    card = load_card(art)
    x, y = Artifact(art).test_data()
    with open_runner(art, "fp32") as runner:
        card.variants["fp32"].latency["1"] = measure(runner.run, x[:1], BenchConfig(warmup=2, window=5, min_runs=10,
                                                                                    max_runs=20))
    card.selected = "fp32"
    save_card(art, card)
    bundle = package(art, tmp_path / "b.tar.gz")  # the default: the card's selected variant
    m = bundle.manifest
    assert m["variant"] == "fp32" and not bundle.notes
    assert m["accuracy"] == card.variants["fp32"].accuracy.model_dump(mode="json")
    assert m["accuracy"]["split"] == "test" and m["accuracy"]["n"] == len(y)
    assert m["latency"]["1"] == card.variants["fp32"].latency["1"].model_dump(mode="json")
    assert bundle.report.ok and bundle.sha256 == sha256_file(bundle.path)


def test_unmeasured_variant_is_packaged_with_a_note(bundles, trained, tmp_path):
    b = package(trained("lenet5"), tmp_path / "b.tar.gz", PackageConfig(variant="fp32", samples=3))
    assert b.manifest["accuracy"] is None and b.manifest["latency"] == {}
    assert len(b.notes) == 1 and "zoodeploy evaluate" in b.notes[0]
    assert b.manifest["samples"]["count"] == 3 and len(b.report.samples) == 3


def test_mobile_bundle_has_ort_model_operator_config_and_usability_report(bundles, tmp_path):
    root = unpack(bundles("mobile"), tmp_path / "x")
    m = json.loads((root / "manifest.json").read_text())
    assert m["model"] == "model.ort" and not (root / "model.onnx").exists()
    config = (root / "mobile" / "required_operators.config").read_text()
    assert "# - model.ort" in config and str(tmp_path) not in config
    ops = {op for line in config.splitlines() if not line.startswith("#") for op in line.split(";")[2].split(",")}
    assert {"Gemm", "FusedConv"} <= ops  # ORT fused the Conv+ReLU pairs before saving
    report = (root / "mobile" / "usability_report.txt").read_text()
    assert "# NNAPI: " in report and "# CoreML MLProgram: " in report and str(tmp_path) not in report
    assert set(m["mobile"]["usability"]) == {"NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram"}
    sess = ort.InferenceSession(str(root / "model.ort"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[1:] == [3, 32, 32]
    assert m["runtime"]["why"]["onnxruntime"].startswith("model.ort: ORT format version")
    assert "converted from it" in m["measured_on"]
    # converted here: the expected outputs are the shipped model.ort's, not fp32.onnx's
    computed = json.loads((root / "samples/expected.json").read_text())["computed_with"]
    assert (computed["file"], computed["converted_from"]) == ("model.ort", "fp32.onnx")
    assert verify_bundle(bundles("mobile")).max_abs_diff < 1e-6


def test_int8_ort_variant_ships_the_files_optimize_recorded(artifact, tmp_path):
    from zoodeploy.optimize import OptimizeConfig, optimize
    art = artifact("lenet5")
    optimize(art, OptimizeConfig(passes=("int8", "ort-format"), max_drop=None, bench=False, calib_size=32))
    card = load_card(art)
    v = card.variants["int8-ort"]
    bundle = package(art, tmp_path / "b.tar.gz", PackageConfig(variant="int8-ort", target="mobile", samples=4))
    root = unpack(bundle.path, tmp_path / "x")
    m = bundle.manifest
    assert m["files"]["model.ort"]["sha256"] == v.sha256 and m["precision"] == "int8"
    assert m["accuracy"] == v.accuracy.model_dump(mode="json")  # optimize measured it on the test split
    shipped = (root / "mobile/required_operators.config").read_text().splitlines()
    recorded = (art / v.recipe.required_operators_config).read_text().splitlines()
    assert [ln for ln in shipped if not ln.startswith("#")] == [ln for ln in recorded if not ln.startswith("#")]
    assert m["mobile"]["usability"] == v.recipe.mobile_usability.model_dump(mode="json")["eps"]
    assert "made here" not in m["mobile"]["origin"] and bundle.report.prob_atol == 0.02
    (art / v.recipe.required_operators_config).write_text("tampered\n")
    with pytest.raises(ArtifactError, match="required_operators.config does not match the sha256"):
        package(art, tmp_path / "c.tar.gz", PackageConfig(variant="int8-ort", target="mobile"))


def test_refusals_name_the_problem(artifact, tmp_path):
    art = artifact("lenet5")
    with pytest.raises(ArtifactError, match="selects no variant"):
        package(art, tmp_path / "b.tar.gz")
    with pytest.raises(ArtifactError, match="no variant 'int9'"):
        package(art, tmp_path / "b.tar.gz", PackageConfig(variant="int9"))
    with pytest.raises(ArtifactError, match="is a folder"):
        package(art, tmp_path, PackageConfig(variant="fp32"))
    with pytest.raises(ZoodeployError, match="--samples"):
        PackageConfig(samples=0)
    card = load_card(art)
    card.variants["trt"] = card.variants["fp32"].model_copy(update={"name": "trt", "runtime": "tensorrt"})
    save_card(art, card)
    with pytest.raises(ArtifactError, match="runs on tensorrt.*fp32"):
        package(art, tmp_path / "b.tar.gz", PackageConfig(variant="trt"))
    (art / "fp32.onnx").write_bytes((art / "fp32.onnx").read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        package(art, tmp_path / "b.tar.gz", PackageConfig(variant="fp32"))
    assert not (tmp_path / "b.tar.gz").exists()


def test_a_failed_verification_leaves_no_bundle_and_keeps_the_old_one(trained, tmp_path, monkeypatch):
    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"previous bundle")

    def fail(path):  # fault injection: the archive was written, its check then fails
        assert Path(path).stat().st_size > 0
        raise ValidationError("injected")

    monkeypatch.setattr("zoodeploy.package.bundle.verify_bundle", fail)
    with pytest.raises(ValidationError, match="injected"):
        package(trained("lenet5"), out, PackageConfig(variant="fp32", samples=2))
    assert out.read_bytes() == b"previous bundle"
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar.gz"]  # no temp file left beside it


def _host_as_device(calls: list):
    """A device step (`PackageConfig.on_device`) that runs the bundle's own predict.py on this host."""
    def run(bundle: Path, images: list[str], isa: str, make: bool) -> TargetOutputs:
        calls.append({"isa": isa, "make": make, "images": images,
                      "files": sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())})
        r = subprocess.run([sys.executable, str(bundle / "predict.py"), "--json", "--logits",
                            *(str(bundle / f) for f in images)], capture_output=True, text=True, check=True)
        logits = np.array([row["logits"] for row in json.loads(r.stdout)], np.float32)
        return TargetOutputs(softmax(logits), "this host, standing in for the arm64 device",
                             {"onnxruntime": ort.__version__})
    return run


def test_the_target_devices_outputs_are_written_once_by_packaging(trained, tmp_path):
    calls: list = []
    cfg = PackageConfig(variant="fp32", samples=3, target_isa="arm64", on_device=_host_as_device(calls))
    bundle = package(trained("lenet5"), tmp_path / "b.tar.gz", cfg)
    [call] = calls  # the device ran a runnable bundle: every file so far and a manifest of them
    assert call["isa"] == "arm64" and call["make"] and len(call["images"]) == 3
    assert "manifest.json" in call["files"] and "samples/expected.json" not in call["files"]
    root = unpack(bundle.path, tmp_path / "x")
    expected = json.loads((root / "samples/expected.json").read_text())
    on_arm = expected["targets"]["arm64"]
    assert on_arm["top1"] == [s["top1"] for s in expected["samples"]] and on_arm["prob_atol"] == 1e-4
    assert on_arm["computed_with"]["max_abs_diff_vs_build_host"] < 1e-5
    assert bundle.manifest["samples"]["targets"] == {"arm64": on_arm["computed_with"]}
    assert bundle.report.ok and not any("arm64" in n for n in bundle.notes)  # the manifest lists expected.json as written


def test_no_target_device_is_a_note_only_when_one_was_asked_for(trained, tmp_path):
    def nowhere(bundle, images, isa, make):
        return "no arm64 device is made on this machine"
    asked = package(trained("lenet5"), tmp_path / "a.tar.gz",
                    PackageConfig(variant="fp32", samples=2, target_isa="arm64", on_device=nowhere))
    assert any("no arm64 ones: no arm64 device is made" in n for n in asked.notes)
    assert "targets" not in asked.manifest["samples"]
    plain = package(trained("lenet5"), tmp_path / "b.tar.gz", PackageConfig(variant="fp32", samples=2, on_device=nowhere))
    assert not any("arm64" in n for n in plain.notes)  # a cpu bundle for the host: no device asked


def test_pick_samples_takes_each_class_in_turn():
    labels = np.array([2, 0, 0, 1, 2, 0, 1])
    assert pick_samples(labels, 4) == [1, 3, 0, 2]
    assert pick_samples(labels, 100) == [1, 3, 0, 2, 6, 4, 5]


def _fmt(opsets: dict, ir: int | None, used=("ai.onnx",), ort_format: str | None = None) -> ModelFormat:
    return ModelFormat(opsets, frozenset(used), ir, ort_format)


@pytest.mark.parametrize("fmt, want", [
    (_fmt({"ai.onnx": 18}, 10), ">=1.18"),
    (_fmt({"ai.onnx": 17}, 8), ">=1.12"),
    (_fmt({"ai.onnx": 17}, 9), ">=1.16"),
    (_fmt({"ai.onnx": 19, "ai.onnx.ml": 3}, 8, used=("ai.onnx", "ai.onnx.ml")), ">=1.15"),
    (_fmt({"ai.onnx": 18, "ai.onnx.ml": 4}, 8, used=("ai.onnx", "ai.onnx.ml")), ">=1.17"),
    (_fmt({"ai.onnx": 18, "ai.onnx.ml": 5}, 10), ">=1.18"),  # declared by the quantizer, never used
    (_fmt({"ai.onnx": 18, "com.microsoft": 1}, 8), ">=1.14"),  # declared, never used
    (_fmt({"ai.onnx": 18, "com.microsoft": 1}, 8, used=("ai.onnx", "com.microsoft")), ">=1.32"),  # contrib ops
    (_fmt({"ai.onnx": 25}, 11), ">=1.32"),  # past the table: the verified one
    (_fmt({"ai.onnx": 18, "ai.onnx.ml": 5}, 10, used=("ai.onnx", "ai.onnx.ml")), ">=1.32"),
    (_fmt({"ai.onnx": 18}, 10, ort_format="5"), ">=1.13"),
    (_fmt({"ai.onnx": 18}, 10, ort_format="6"), ">=1.19"),
    (_fmt({"ai.onnx": 18}, 10, ort_format="7"), ">=1.32"),
])
def test_min_onnxruntime_follows_the_compatibility_table(fmt, want):
    assert min_onnxruntime(fmt, "1.32.0+cpu")[0] == want
