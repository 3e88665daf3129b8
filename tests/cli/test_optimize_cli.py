"""`zoodeploy optimize`: JSON output through a real subprocess, and one-line errors for bad input
in-process (cli_support.invoke_cli: the same error handling, without starting Python for each)."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest
from cli_support import assert_one_line_error, invoke_cli, run_cli


def test_default_is_fuse_and_int8_with_json(trained, tmp_path):
    artifact = tmp_path / "lenet5"
    shutil.copytree(trained("lenet5"), artifact)
    r = run_cli("optimize", artifact, "--calib-size", "16", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    variants = json.loads(r.stdout)  # stdout holds the JSON only: progress went to stderr
    assert [v["name"] for v in variants] == ["fused", "int8"]
    for v in variants:
        assert v["accuracy"]["split"] == "test" and v["accuracy"]["drop_pt"] is not None
        assert v["latency"]["1"]["p50_ms"] > 0
    int8 = variants[1]
    assert int8["recipe"]["kind"] == "int8" and int8["recipe"]["control"]["max_drop_pt"] == 1.0  # the one default --max-drop
    assert int8["speed"]["reference"] == "fused"
    card = json.loads((artifact / "card.json").read_text())
    assert {"fused", "int8"} <= set(card["variants"])


@pytest.mark.parametrize("case", ["not-onnx", "no-metadata-no-calib", "calib-dir-without-images",
                                  "bad-max-drop", "bad-scheme"])
def test_bad_input_is_one_line(trained, tmp_path, case):
    bare = tmp_path / "bare.onnx"
    model = onnx.load(str(trained("lenet5") / "fp32.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(bare))
    (tmp_path / "calib" / "cats").mkdir(parents=True)
    (tmp_path / "calib" / "dogs").mkdir()
    if case == "not-onnx":
        (tmp_path / "notes.onnx").write_text("hello\n")
        r, needles = invoke_cli("optimize", tmp_path / "notes.onnx", "--calib-data", "digits"), ["notes.onnx", "ONNX"]
    elif case == "no-metadata-no-calib":
        r, needles = invoke_cli("optimize", bare), ["lone ONNX model", "--calib-data"]
    elif case == "calib-dir-without-images":
        r, needles = invoke_cli("optimize", bare, "--calib-data", tmp_path / "calib"), ["no images"]
    elif case == "bad-max-drop":
        r, needles = invoke_cli("optimize", bare, "--calib-data", "digits", "--max-drop", "half"), ["--max-drop"]
    else:
        r, needles = invoke_cli("optimize", bare, "--calib-data", "digits", "--scheme", "s4s4"), ["--scheme", "u8s8"]
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "bare-artifact" / "fused.onnx").exists()
