"""`zoodeploy export`: artifacts, zoo names, and one-line errors. One real subprocess; the rest
in-process (cli_support.invoke_cli: the same error handling, without starting Python for each)."""

import json

import numpy as np
import onnxruntime as ort
import torch
import torchvision
from cli_support import assert_one_line_error, invoke_cli, run_cli

from zoodeploy.card import load_card
from zoodeploy.card import CARD_LOCK

LOCAL_PROXY = "http://127.0.0.1:9"  # nothing listens there: downloads fail at once, as offline


def zd(*args, **kw):
    return invoke_cli("export", *args, **kw)


def no_leftovers(directory):
    return [p.name for p in directory.iterdir()
            if p.name != CARD_LOCK and (p.name.startswith(".") or p.suffix == ".tmp")] == []


def test_export_artifact_in_place_prints_and_records(artifact):
    art = artifact("lenet5")
    r = run_cli("export", art, "--json")  # the one real subprocess
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    card = load_card(art)
    assert out["artifact"] == str(art) and out["sha256"] == card.variants["fp32"].sha256
    assert [c["batch"] for c in out["validation"]["comparisons"]] == [1, 8]
    assert out["validation"]["samples"].startswith("digits val split")


def test_torchvision_state_dict_exports_to_a_graph_matching_torchvision(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pt")
    out = tmp_path / "art"
    r = zd("resnet18", "--weights", tmp_path / "resnet18.pt", "--input-size", 40, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "exported resnet18" in r.stderr and r.stdout == ""
    card = load_card(out)
    assert (card.input_size, card.num_classes, card.data) == (40, 10, None)
    assert card.variants["fp32"].recipe.input_size == 40
    assert card.variants["fp32"].validation.samples.startswith("random normal")
    x = np.random.default_rng(0).standard_normal((5, 3, 40, 40)).astype(np.float32)
    got = ort.InferenceSession(str(out / "fp32.onnx")).run(None, {"input": x})[0]
    with torch.inference_mode():
        want = reference(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    assert (got.argmax(1) == want.argmax(1)).all()
    assert no_leftovers(tmp_path)


def test_missing_artifact(tmp_path):
    assert_one_line_error(zd(tmp_path / "nope"), "does not exist")


def test_corrupt_checkpoint(artifact):
    art = artifact("lenet5")
    (art / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(zd(art), "checkpoint.pt", "sha256")
    card = load_card(art)  # also when the card is made to agree with the broken file
    from zoodeploy.card import save_card
    from zoodeploy.fileio import sha256_file
    card.checkpoint_sha256 = sha256_file(art / "checkpoint.pt")
    save_card(art, card)
    assert_one_line_error(zd(art), "checkpoint.pt", "not a readable")
    assert no_leftovers(art)


def test_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("a regular file, not a directory")
    assert_one_line_error(zd("lenet5", "--weights", "none", "-o", tmp_path / "file" / "art"), "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_imagenet_weights_offline(tmp_path):
    env = {"TORCH_HOME": str(tmp_path / "hub"), "HTTPS_PROXY": LOCAL_PROXY, "https_proxy": LOCAL_PROXY,
           "HTTP_PROXY": LOCAL_PROXY, "http_proxy": LOCAL_PROXY}
    assert_one_line_error(zd("squeezenet1_1", "--weights", "imagenet", "-o", tmp_path / "art", env=env),
                          "cannot download", "place it at")
    assert not (tmp_path / "art").exists() and no_leftovers(tmp_path)


def test_input_size_below_the_architectures_minimum(tmp_path):
    r = zd("alexnet", "--weights", "none", "--input-size", 8, "-o", tmp_path / "art")
    assert_one_line_error(r, "at least 63px")
    assert not (tmp_path / "art").exists() and no_leftovers(tmp_path)
