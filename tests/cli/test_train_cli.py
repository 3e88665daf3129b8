"""`zoodeploy train`: output through a real subprocess, and one-line errors for bad input
in-process (cli_support.invoke_cli: the same error handling, without starting Python for each)."""

import json

import numpy as np
import pytest
from cli_support import assert_one_line_error, invoke_cli, run_cli
from PIL import Image


def _folder(root, n=8):
    rng = np.random.default_rng(0)
    for k, cls in enumerate(["circle", "square"]):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) // (k + 1)).save(root / cls / f"{i}.png")
    return root


@pytest.mark.trains  # one epoch on 16 images, in a subprocess: no fixture tells conftest.py
def test_train_on_image_folder_writes_artifact(tmp_path):
    data = _folder(tmp_path / "data")
    r = run_cli("train", "lenet5", "--data", data, "--epochs", "1", "-o", tmp_path / "art", "--json")
    assert r.returncode == 0, r.stderr
    card = json.loads(r.stdout)
    assert card["labels"] == ["circle", "square"] and card["name"] == "lenet5"
    assert (tmp_path / "art" / "checkpoint.pt").is_file()
    assert json.loads((tmp_path / "art" / "card.json").read_text())["training"]["epochs"] == 1


@pytest.mark.parametrize("case", ["unknown-model", "missing-dir", "empty-class", "no-readable-image", "bad-checkpoint"])
def test_bad_input_is_one_line(tmp_path, case):
    data = _folder(tmp_path / "data")
    args = ["lenet5", "--data", data, "--epochs", "1", "-o", tmp_path / "out"]
    needle = []
    if case == "unknown-model":
        args[0], needle = "resnet5O", ["resnet50"]
    elif case == "missing-dir":
        args[2], needle = tmp_path / "nope", ["does not exist"]
    elif case == "empty-class":
        (data / "empty").mkdir()
        needle = ["empty", "no images"]
    elif case == "no-readable-image":  # one unreadable image is skipped and counted; none readable is an error
        for f in data.rglob("*.png"):
            f.write_bytes(b"garbage")
        needle = ["readable"]
    else:
        (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
        args += ["--weights", tmp_path / "bad.pt"]
        needle = ["bad.pt"]
    assert_one_line_error(invoke_cli("train", *args), *needle)
    assert not (tmp_path / "out" / "card.json").exists()
