"""`zoodeploy package` and `zoodeploy verify-bundle` through real subprocesses; refusals in-process
(cli_support.invoke_cli: the same one-line error and exit 1, without starting Python)."""

from __future__ import annotations

import json

from bundle_helpers import repack
from cli_support import assert_one_line_error, invoke_cli, run_cli

from zoodeploy.card import load_card, save_card
from zoodeploy.fileio import sha256_file


def test_package_then_verify_bundle(artifact, tmp_path):
    art = artifact("lenet5")
    card = load_card(art)
    card.selected = "fp32"
    save_card(art, card)
    out = tmp_path / "dist" / "lenet5.tar.gz"
    r = run_cli("package", art, "-o", out, "--samples", "4")
    assert r.returncode == 0, r.stderr
    assert f"packaged lenet5 fp32 (cpu) -> {out}" in r.stderr and "10 files match manifest.json" in r.stderr
    assert "4/4 samples match" in r.stderr and sha256_file(out) in r.stderr
    assert "no measured accuracy or latency" in r.stderr
    r = run_cli("verify-bundle", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["archive_sha256"] == sha256_file(out) and report["files_checked"] == 10
    assert report["variant"] == "fp32" and len(report["samples"]) == 4 and not report["code_differs"]


def test_package_unknown_variant_is_one_line(trained, tmp_path):
    r = invoke_cli("package", trained("lenet5"), "--variant", "int9", "-o", tmp_path / "b.tar.gz")
    assert_one_line_error(r, "no variant 'int9'", "have: fp32")
    assert not (tmp_path / "b.tar.gz").exists()


def test_verify_bundle_bad_input_is_one_line(bundle_copy, tmp_path):
    root = bundle_copy("cpu")
    (root / "model.onnx").write_bytes((root / "model.onnx").read_bytes()[:-1])
    assert_one_line_error(invoke_cli("verify-bundle", repack(root, tmp_path / "t.tar.gz")), "model.onnx (sha256 mismatch")
