"""Atomic artifact writes (temp file + rename) and checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoodeploy.errors import ArtifactError

UMASK = os.umask(0)  # read once at import (setting it is the only way to read it), then restored
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds.

    For libraries that write to a path themselves (onnx.save, ORT, quantizers). Nothing
    half-written is ever left at `path`, and the temp file is removed on failure.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ArtifactError(f"cannot write {path}: {e.strerror or e}; choose a writable location") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~UMASK)  # mkstemp makes 0600: others (a server's user) could not read it
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
        # libraries sometimes write a sibling external-data file next to the temp path
        Path(str(tmp_path) + ".data").unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
