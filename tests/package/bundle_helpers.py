"""Helpers for the package tests: taking bundles apart and putting them back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from zoodeploy.fileio import sha256_file
from zoodeploy.package import safe_extract
from zoodeploy.package.archive import write_archive


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
