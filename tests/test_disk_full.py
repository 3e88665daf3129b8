"""A full disk: each command that writes says so in one line (exit 1) and leaves nothing half-written.

The disk is a small tmpfs (mounting one needs root; the test is skipped, saying why, without it),
filled to leave a chosen number of bytes free, so a write starts and then fails with ENOSPC.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_support import assert_one_line_error, invoke_cli

from zoodeploy.package import PackageConfig, package, safe_extract


@pytest.fixture
def disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'mount failed'}): needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def leave_free(mount: Path, free: int) -> None:
    """Fill `mount` so that about `free` bytes remain."""
    filler = mount / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - free))


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "filler"}


def assert_nothing_half_written(mount: Path, before: dict[str, str]) -> None:
    assert snapshot(mount) == before  # every file as it was; no temp file, no staging folder, no output
    assert not [p for p in mount.rglob("*") if p.is_dir() and p.name.startswith(".")]


def test_export_and_optimize_on_a_full_disk(disk, trained):
    art = shutil.copytree(trained("lenet5"), disk / "art")
    before = snapshot(disk)
    leave_free(disk, 100_000)  # fp32.onnx is 260 KB: its write starts, then fails
    # export from the ONNX file (a new artifact; a PyTorch export costs 10 s more and writes the same way)
    assert_one_line_error(invoke_cli("export", art / "fp32.onnx", "-o", disk / "new"), "No space left on device")
    assert_nothing_half_written(disk, before)
    r = invoke_cli("optimize", art, "--passes", "fused")  # its progress line, then the error
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "No space left on device" in r.stderr.strip().splitlines()[-1], r.stderr
    assert_nothing_half_written(disk, before)


def test_package_predict_and_verify_bundle_on_a_full_disk(disk, trained, tmp_path):
    art = trained("lenet5")
    bundle = package(art, tmp_path / "b.tar.gz", PackageConfig(variant="fp32", samples=2)).path
    leave_free(disk, 100_000)
    before = snapshot(disk)
    assert_one_line_error(invoke_cli("package", art, "--variant", "fp32", "-o", disk / "b.tar.gz"),
                          "No space left on device")
    assert_nothing_half_written(disk, before)
    assert_one_line_error(invoke_cli("verify-bundle", bundle, "--into", disk / "out"), "free")
    assert_nothing_half_written(disk, before)
    image = safe_extract(bundle, tmp_path / "x") / "samples" / "00_0.png"
    leave_free(disk, 0)
    before = snapshot(disk)
    assert_one_line_error(invoke_cli("predict", art, image, "--variant", "fp32", "-o", disk / "out.csv"), "No space left on device")
    assert_nothing_half_written(disk, before)


def test_a_later_write_removes_what_a_killed_process_left(tmp_path):
    """Temp files and staging folders carry their process's pid; those of a gone process are removed."""
    from zoodeploy.fileio import owned_prefix, staging_dir, write_json
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()  # exited
    orphan_file = tmp_path / f".card.json.zd-{gone}-abc.tmp"
    orphan_dir = tmp_path / f".extract.zd-{gone}-1234"
    alive = tmp_path / ".card.json.zd-1-abc.tmp"  # pid 1 is running
    for p in (orphan_file, alive):
        p.write_bytes(b"half")
    orphan_dir.mkdir()
    (orphan_dir / "model.onnx").write_bytes(b"half")
    write_json(tmp_path / "card.json", {"ok": True})
    assert not orphan_file.exists() and not orphan_dir.exists() and alive.exists()
    assert owned_prefix("x") == f"x.zd-{os.getpid()}-"
    stale = tmp_path / f"zoodeploy-package.zd-{gone}-x"
    stale.mkdir()
    with staging_dir("zoodeploy-package", tmp_path) as tmp:
        assert tmp.name.startswith(owned_prefix("zoodeploy-package")) and not stale.exists()
    assert not tmp.exists()
