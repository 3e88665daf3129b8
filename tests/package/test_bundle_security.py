"""Bundles that cannot be fooled: a re-hashed manifest is caught by a pinned hash or a signature,
paths stay inside the bundle, requirements are never imported, bombs are refused before writing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_helpers import rehash, repack
from cli_support import assert_one_line_error, invoke_cli
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zoodeploy.errors import ValidationError
from zoodeploy.fileio import sha256_file
from zoodeploy.package import PackageConfig, package, safe_extract, verify_bundle


def _keys(folder: Path, name: str) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _edit_manifest(root: Path, change) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def signed(trained, tmp_path_factory):
    """(a signed fp32 bundle of the trained lenet5, its public key, another key's public half)."""
    folder = tmp_path_factory.mktemp("signed")
    private, public = _keys(folder, "ours")
    _, other = _keys(folder, "theirs")
    bundle = package(trained("lenet5"), folder / "lenet5.tar.gz", PackageConfig(variant="fp32", sign=private))
    return bundle, public, other


def test_a_signed_bundle_verifies_with_its_key_and_not_after_tampering(signed, tmp_path):
    bundle, public, other = signed
    assert bundle.report.signed_by and bundle.report.signed_by.startswith("ed25519:")
    report = verify_bundle(bundle.path, key=public)
    assert report.ok and report.signed_by == bundle.report.signed_by
    assert report.authenticity.startswith("authentic: the manifest is signed by ed25519:")
    with pytest.raises(ValidationError, match="does not match manifest.json under key"):
        verify_bundle(bundle.path, key=other)
    # the attack a manifest alone cannot see: predict.py altered and the manifest re-hashed to match
    root = safe_extract(bundle.path, tmp_path / "x")
    (root / "predict.py").write_text((root / "predict.py").read_text() + "\nprint('owned')\n")
    rehash(root, "predict.py")
    _edit_manifest(root, lambda m: m["files"]["predict.py"].update(bytes=(root / "predict.py").stat().st_size))
    tampered = repack(root, tmp_path / "t.tar.gz")
    report = verify_bundle(tampered)  # consistent: and it says that is all it is
    assert report.ok and report.authenticity.startswith("consistent, not authenticated")
    with pytest.raises(ValidationError, match="altered after signing"):
        verify_bundle(tampered, key=public)
    r = invoke_cli("verify-bundle", tampered, "--key", public)
    assert_one_line_error(r, "manifest.sig does not match manifest.json")
    # the device's own check, with the bundle's predict.py: its --key refuses the altered bundle
    device = subprocess.run([sys.executable, str(root / "predict.py"), "--self-check", "--key", str(public)],
                            capture_output=True, text=True, timeout=120)
    assert device.returncode == 1 and "altered after signing" in device.stderr, device.stderr


def test_the_device_checks_a_signature_with_predict_py(signed, tmp_path):
    bundle, public, other = signed
    root = safe_extract(bundle.path, tmp_path / "x")
    ok = subprocess.run([sys.executable, str(root / "predict.py"), "--self-check", "--key", str(public)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "manifest signed by ed25519:" in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, str(root / "predict.py"), "--self-check", "--key", str(other)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "does not match manifest.json" in bad.stderr


def test_a_pinned_hash_refuses_any_other_archive_before_extracting(bundles, tmp_path):
    archive = bundles("cpu")
    good = sha256_file(archive)
    report = verify_bundle(archive, expect_sha256=good.upper())
    assert report.ok and report.authenticity == "authentic: the archive's sha256 matches the pinned hash"
    r = invoke_cli("verify-bundle", archive, "--expect-sha256", "0" * 64, "--into", tmp_path / "out")
    assert_one_line_error(r, f"has sha256 {good}, not the pinned", "nothing was extracted")
    assert not (tmp_path / "out").exists()
    assert_one_line_error(invoke_cli("verify-bundle", archive, "--expect-sha256", "abc"), "64 hex digits")


@pytest.mark.parametrize("tamper", ["model-outside", "model-absolute", "sample-absolute", "sample-unlisted"])
def test_paths_the_manifest_names_stay_inside_the_bundle(bundle_copy, tmp_path, tamper):
    root = bundle_copy("cpu")
    (tmp_path / "outside.onnx").write_bytes((root / "model.onnx").read_bytes())  # a model that would load
    if tamper.startswith("model"):
        target = "../../outside.onnx" if tamper == "model-outside" else str(tmp_path / "outside.onnx")
        _edit_manifest(root, lambda m: m.update(model=target))
        why = "names paths outside its file list or the bundle"
    else:
        expected = json.loads((root / "samples/expected.json").read_text())
        expected["samples"][0]["file"] = ("/etc/hostname" if tamper == "sample-absolute"
                                          else "../" + root.name + "/model.onnx")
        (root / "samples/expected.json").write_text(json.dumps(expected))
        rehash(root, "samples/expected.json")
        _edit_manifest(root, lambda m: m["files"]["samples/expected.json"].update(
            bytes=(root / "samples/expected.json").stat().st_size))
        why = "names sample images that manifest.json does not list"
    with pytest.raises(ValidationError, match=why):
        verify_bundle(repack(root, tmp_path / "t.tar.gz"))


def test_a_requirement_the_bundle_names_is_never_imported(bundle_copy, tmp_path, monkeypatch):
    probe = tmp_path / "mods" / "zd_probe_module.py"
    probe.parent.mkdir()
    probe.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('imported')\n__version__ = '9'\n")
    monkeypatch.syspath_prepend(str(probe.parent))
    root = bundle_copy("cpu")
    _edit_manifest(root, lambda m: m["runtime"]["requirements"].update(zd_probe_module=">=1"))
    with pytest.raises(ValidationError, match="requires zd_probe_module; a bundle needs only"):
        verify_bundle(root)
    assert not (tmp_path / "ran").exists() and "zd_probe_module" not in sys.modules


def test_members_larger_than_the_manifest_says_are_refused_before_writing(bundle_copy, tmp_path):
    root = bundle_copy("cpu")
    _edit_manifest(root, lambda m: m["files"]["model.onnx"].update(bytes=10))
    with pytest.raises(ValidationError, match=r"model.onnx'?: \d+ bytes, but manifest.json records 10"):
        safe_extract(repack(root, tmp_path / "t.tar.gz"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_tar_bomb_is_refused_before_writing(bundle_copy, tmp_path):
    """70 MB of zeros listed with their true size and hash: a consistent bundle, 200x compressed."""
    root = bundle_copy("cpu")
    with open(root / "model.onnx", "wb") as f:
        f.truncate(70 << 20)
    rehash(root, "model.onnx")
    _edit_manifest(root, lambda m: m["files"]["model.onnx"].update(bytes=70 << 20))
    bomb = repack(root, tmp_path / "bomb.tar.gz")
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ValidationError, match="a decompression bomb"):
        safe_extract(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()
