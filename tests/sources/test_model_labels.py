"""Labels belong to the model: read from its ONNX metadata under every convention real exporters use,
class folders matched to them by name (never by sort order), a model without labels refused on
labelled folders, and unlabelled nested folders read as a bag of images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from cli_support import assert_one_line_error, invoke_cli
from PIL import Image
from torch import nn

from zoodeploy.card import load_card
from zoodeploy.models.data import splits_for

ANGLES = ["0", "90", "180", "270"]  # output order; sorted as folder names: 0, 180, 270, 90


class Quadrant(nn.Module):
    """Output i is the brightness of quadrant i (top-left, top-right, bottom-right, bottom-left)."""

    def forward(self, x):
        q = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 2).flatten(1)  # tl, tr, bl, br
        return q[:, [0, 1, 3, 2]] * 10


def quadrant_onnx(path: Path, props: dict[str, str]) -> Path:
    torch.onnx.export(Quadrant().eval(), (torch.zeros(1, 3, 32, 32),), str(path), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def quadrant_images(root: Path, per_class: int = 6, folders: list[str] | None = None, nested: bool = False) -> Path:
    """Images whose bright quadrant is their class, in folders named by `folders` (None: no class folders)."""
    rng = np.random.default_rng(0)
    corners = [(0, 0), (0, 16), (16, 16), (16, 0)]
    for k, (top, left) in enumerate(corners):
        for i in range(per_class):
            arr = rng.integers(0, 40, (32, 32, 3), dtype=np.uint8)
            arr[top:top + 16, left:left + 16] = 230
            where = root / folders[k] if folders else root / (f"{2023 + i % 2}" if nested else "")
            where = where / "deeper" if nested and i % 3 == 0 else where
            where.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(where / f"q{k}-{i}.png")
    return root


def _fp32_accuracy(out: Path) -> float:
    card = load_card(out)
    test = splits_for(card.data, card.labels).test
    x = test.arrays(card.preprocessing)
    sess = ort.InferenceSession(str(out / "fp32.onnx"), providers=["CPUExecutionProvider"])
    pred = sess.run(None, {"x": x})[0].argmax(1)
    return float((pred == test.labels).mean())


CONVENTIONS = {
    "newline list": {"labels": "\n".join(ANGLES) + "\n"},
    "JSON list under classes": {"classes": json.dumps(ANGLES)},
    "Ultralytics names (Python dict repr)": {"names": str(dict(enumerate(ANGLES)))},
    "Optimum id2label (JSON map)": {"id2label": json.dumps({str(i): a for i, a in enumerate(ANGLES)})},
    "PaddleOCR character": {"character": "\n".join(ANGLES)},
}


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_labels_in_metadata_are_the_model_s(tmp_path, convention):
    model = quadrant_onnx(tmp_path / "orient.onnx", CONVENTIONS[convention])
    data = quadrant_images(tmp_path / "data", folders=ANGLES)
    out = tmp_path / "art"
    r = invoke_cli("export", model, "--eval-data", data, "-o", out)
    assert r.returncode == 0, r.stderr
    card = load_card(out)
    assert card.labels == ANGLES and card.labels_source.startswith("metadata_props")
    assert card.data.labelled and card.data.class_to_label == {a: i for i, a in enumerate(ANGLES)}
    assert card.data.labels_match == "4 of 4 folders match orient's labels by name"
    assert _fp32_accuracy(out) == 1.0  # sorted folder order (0, 180, 270, 90) would score 25-50%


def test_no_labels_refuses_labelled_folders(tmp_path):
    model = quadrant_onnx(tmp_path / "orient.onnx", {})
    data = quadrant_images(tmp_path / "data", folders=ANGLES)
    out = tmp_path / "art"
    r = invoke_cli("export", model, "--eval-data", data, "-o", out)
    assert_one_line_error(r, "--labels")
    assert not out.exists()
    # told to: the folders in sorted order, and the card says so
    r = invoke_cli("export", model, "--eval-data", data, "--labels", "folders", "-o", out)
    assert r.returncode == 0, r.stderr
    card = load_card(out)
    assert card.labels == sorted(ANGLES) and "sorted order" in card.labels_source


def test_labels_file_matches_non_sorted_folders(tmp_path):
    model = quadrant_onnx(tmp_path / "orient.onnx", {})
    data = quadrant_images(tmp_path / "data", folders=ANGLES)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(ANGLES))
    out = tmp_path / "art"
    r = invoke_cli("export", model, "--eval-data", data, "--labels", labels, "-o", out)
    assert r.returncode == 0, r.stderr
    assert load_card(out).labels_source == f"--labels {labels}" and _fp32_accuracy(out) == 1.0


def test_some_folders_not_labels_is_refused(tmp_path):
    model = quadrant_onnx(tmp_path / "orient.onnx", {"labels": "\n".join(ANGLES)})
    data = quadrant_images(tmp_path / "data", folders=["0", "90", "180", "upside-down"])
    r = invoke_cli("export", model, "--eval-data", data, "-o", tmp_path / "art")
    assert_one_line_error(r, "upside-down")
    assert not (tmp_path / "art").exists()


def test_nested_unlabelled_folders(tmp_path):
    """Photo dumps (2023/ 2024/ deeper/) are images, for calibration and for evaluation."""
    model = quadrant_onnx(tmp_path / "orient.onnx", {"labels": "\n".join(ANGLES)})
    data = quadrant_images(tmp_path / "photos", nested=True)
    out = tmp_path / "art"
    r = invoke_cli("export", model, "--calib-data", data, "--eval-data", data, "-o", out)
    assert r.returncode == 0, r.stderr
    card = load_card(out)
    assert not card.data.labelled and sum(card.data.counts.values()) == 24
    assert card.data.labels_match.startswith("0 of 2 folders")
    out2 = tmp_path / "art2"
    r = invoke_cli("export", model, "--calib-data", data, "-o", out2)  # calibration data: always a bag
    assert r.returncode == 0, r.stderr
    assert not load_card(out2).data.labelled


def test_nested_folder_calibrates_an_artifact(tmp_path):
    """A separate --calib-data with two sub-folders (one of them 2 images) is images, not classes."""
    model = quadrant_onnx(tmp_path / "orient.onnx", {"labels": "\n".join(ANGLES)})
    evaluation = quadrant_images(tmp_path / "eval", folders=ANGLES)
    photos = tmp_path / "photos"
    for i, year in enumerate(["2023", "2024", "2024", "2024"]):
        (photos / year).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(photos / year / f"p{i}.png")
    out = tmp_path / "art"
    assert invoke_cli("export", model, "--eval-data", evaluation, "-o", out).returncode == 0
    r = invoke_cli("optimize", out, "--calib-data", photos, "--passes", "int8", "--max-drop", "none", "--no-bench")
    assert r.returncode == 0, r.stderr
    int8 = load_card(out).variants["int8"]
    assert int8.recipe.calib_size == 4 and f"{photos}, 4 of 4 images" in int8.made_by


def test_evaluate_on_other_data_matches_by_name(tmp_path):
    """`zoodeploy evaluate ART --data DIR`: the folders in any order, matched to the card's labels."""
    model = quadrant_onnx(tmp_path / "orient.onnx", {"labels": "\n".join(ANGLES)})
    out = tmp_path / "art"
    assert invoke_cli("export", model, "--eval-data", quadrant_images(tmp_path / "a", folders=ANGLES),
                      "-o", out).returncode == 0
    r = invoke_cli("evaluate", out, "--data", quadrant_images(tmp_path / "b", per_class=5, folders=ANGLES), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["variants"]["fp32"]["top1"] == 100.0, r.stdout
