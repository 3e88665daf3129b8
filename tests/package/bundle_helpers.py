"""Helpers for the package tests: the CLI as a subprocess, and taking bundles apart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from zoodeploy.fileio import sha256_file
from zoodeploy.package import safe_extract
from zoodeploy.package.archive import write_archive


def zd(*args, cwd=None):
    """`zoodeploy ARGS` as a real subprocess."""
    return subprocess.run([sys.executable, "-m", "zoodeploy", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def one_line_error(r, *needles, code=1):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def unpack(archive: Path, dest: Path) -> Path:
    """Plain extraction of a bundle we made (trusted), for tests that then alter it."""
    return safe_extract(archive, dest)


def repack(root: Path, out: Path) -> Path:
    write_archive(root, out, mtime=0)
    return out


def rehash(root: Path, name: str) -> None:
    """Make manifest.json agree with an altered file: tampering that the hashes alone cannot see."""
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][name]["sha256"] = sha256_file(root / name)
    (root / "manifest.json").write_text(json.dumps(manifest))


def copytree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
