"""Extraction never writes outside its folder, and a tampered bundle fails with the file's name."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from bundle_helpers import rehash, repack
from cli_support import assert_one_line_error, invoke_cli

from zoodeploy.errors import ValidationError
from zoodeploy.package import safe_extract, verify_bundle


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


EVIL = {
    "parent-dir": ([_file("b/ok.txt"), _file("b/../../evil.txt")], "path leaves the target directory"),
    "absolute": ([_file("/tmp/zoodeploy-evil.txt")], "absolute path"),
    "symlink": ([_file("b/ok.txt"), _special("b/link", tarfile.SYMTYPE, "/etc/passwd")], "link to '/etc/passwd'"),
    "hardlink": ([_file("b/ok.txt"), _special("b/hard", tarfile.LNKTYPE, "/etc/passwd")], "link to"),
    "device": ([_special("b/dev", tarfile.CHRTYPE)], "device, fifo or other special file"),
    "fifo": ([_special("b/fifo", tarfile.FIFOTYPE)], "device, fifo or other special file"),
    "two-tops": ([_file("a/x"), _file("b/y")], "more than one top folder"),
    "duplicate": ([_file("b/x", b"1"), _file("b/x", b"2")], "duplicate member"),
    "backslash": ([_file("b\\..\\..\\evil.txt")], "path leaves the target directory"),
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, case):
    members, why = EVIL[case]
    archive = _tar(tmp_path / "evil.tar.gz", members)
    dest = tmp_path / "work" / "dest"
    with pytest.raises(ValidationError, match="refusing to extract") as e:
        safe_extract(archive, dest)
    assert why in str(e.value) and "nothing was extracted" in str(e.value)
    assert not dest.exists() and not (tmp_path / "evil.txt").exists() and not (tmp_path / "work").exists()
    assert not Path("/tmp/zoodeploy-evil.txt").exists()


def test_verify_bundle_cli_refuses_a_path_traversal_archive(tmp_path):
    archive = _tar(tmp_path / "evil.tar.gz", [_file("b/manifest.json", b"{}"), _file("b/../../escaped.txt")])
    r = invoke_cli("verify-bundle", archive, "--into", tmp_path / "out")
    assert_one_line_error(r, "refusing to extract", "b/../../escaped.txt")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out").exists()


def test_not_an_archive_and_non_empty_target_are_refused(bundles, tmp_path):
    with pytest.raises(ValidationError, match="missing.tar.gz: no such file"):
        verify_bundle(tmp_path / "missing.tar.gz")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    with pytest.raises(ValidationError, match="not a tar archive"):
        verify_bundle(junk)
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(bundles("cpu").read_bytes()[:5000])
    with pytest.raises(ValidationError, match="truncated or corrupt|could not be extracted|not a tar"):
        verify_bundle(truncated)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ValidationError, match="not empty"):
        verify_bundle(bundles("cpu"), into=busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("victim", ["model.onnx", "preprocess.py", "predict.py", "samples/03_3.png", "model.json"])
def test_a_tampered_file_fails_verification_by_name(bundle_copy, tmp_path, victim):
    root = bundle_copy("cpu")
    data = bytearray((root / victim).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (root / victim).write_bytes(bytes(data))
    with pytest.raises(ValidationError, match=f"{victim} \\(sha256 mismatch: tampered or corrupt\\)"):
        verify_bundle(repack(root, tmp_path / "t.tar.gz"))


def test_extra_and_missing_files_fail_verification_by_name(bundle_copy, tmp_path):
    root = bundle_copy("cpu")
    (root / "numpy.py").write_text("raise SystemExit('shadowed')\n")  # would shadow numpy beside predict.py
    (root / "samples" / "01_1.png").unlink()
    with pytest.raises(ValidationError) as e:
        verify_bundle(repack(root, tmp_path / "t.tar.gz"))
    assert "numpy.py (not in manifest.json)" in str(e.value) and "samples/01_1.png (missing)" in str(e.value)


def test_outputs_that_disagree_with_expected_fail_even_with_consistent_hashes(bundle_copy, tmp_path):
    """Hashes show a file changed; the samples show the model computes something else."""
    root = bundle_copy("cpu")
    expected = json.loads((root / "samples/expected.json").read_text())
    s = expected["samples"][2]
    s["probabilities"] = s["probabilities"][1:] + s["probabilities"][:1]  # another model's answer
    s["top1"] = max(range(len(s["probabilities"])), key=s["probabilities"].__getitem__)
    (root / "samples/expected.json").write_text(json.dumps(expected))
    rehash(root, "samples/expected.json")
    with pytest.raises(ValidationError, match=r"1/8 samples differ .*samples/02_2.png: top-1"):
        verify_bundle(repack(root, tmp_path / "t.tar.gz"))


def test_verify_bundle_accepts_an_extracted_folder_and_keeps_into(bundles, bundle_copy, tmp_path):
    report = verify_bundle(bundle_copy("cpu"))
    assert report.ok and report.files_checked == 14 and report.archive_sha256 is None
    kept = tmp_path / "deployed"
    report = verify_bundle(bundles("cpu"), into=kept)
    assert report.ok and (kept / "lenet5-fp32-cpu" / "predict.py").is_file() and not report.code_differs
