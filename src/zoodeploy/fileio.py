"""Atomic artifact writes (temp file + rename) and checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoodeploy.errors import ArtifactError

UMASK = os.umask(0)  # read once at import (setting it is the only way to read it), then restored
os.umask(UMASK)


# Temp files and staging folders carry the pid of the process that made them (".zd-PID-"), so a
# later run can tell one a killed process left behind (its pid is gone) from one still in use.
_OWNER = re.compile(r"\.zd-(\d+)-")
# what a full disk, a quota or a read-only mount raises; the CLI makes any OSError one line
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def owned_prefix(stem: str) -> str:
    """A temp name prefix that records this process: `stem.zd-PID-`."""
    return f"{stem}.zd-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphans(folder: str | Path) -> list[Path]:
    """Remove the temp files and staging folders in `folder` whose making process is gone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _OWNER.search(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass  # another run removed it first, or it is not ours to remove
    return removed


@contextlib.contextmanager
def staging_dir(stem: str, parent: str | Path | None = None) -> Iterator[Path]:
    """A temporary folder named with this pid (in `parent`, default the temp dir), removed after the
    block; orphans of killed runs beside it are removed first."""
    parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    remove_orphans(parent)
    try:
        path = Path(tempfile.mkdtemp(prefix=owned_prefix(stem), dir=parent))
    except OSError as e:
        raise ArtifactError(f"cannot make a staging folder in {parent}: {e.strerror or e}") from None
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _disk_full(folder: Path, margin: int = 64 << 10) -> str | None:
    """"No space left on device" when the file system holding `folder` has (almost) none left."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return os.strerror(errno.ENOSPC) if st.f_bavail * st.f_frsize < margin else None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds.

    For libraries that write to a path themselves (onnx.save, ORT, quantizers). Nothing
    half-written is ever left at `path`, and the temp file is removed on failure (and, after a
    kill, by the next write into the same folder).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=owned_prefix(f".{path.name}"), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ArtifactError(f"cannot write {path}: {e.strerror or e}; choose a writable location") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~UMASK)  # mkstemp makes 0600: others (a server's user) could not read it
            os.replace(tmp_path, path)
        except Exception as e:
            # libraries that write the file themselves (ONNX Runtime, onnx) report a full disk in their
            # own words ("Protobuf serialization failed"): ask the file system which it was
            why = e.strerror if isinstance(e, OSError) and e.errno in DISK_ERRORS else _disk_full(path.parent)
            if why:  # nothing was written at `path`: say so in one line
                raise ArtifactError(f"cannot write {path}: {why}; nothing was written there "
                                    "(free some space, or choose another location)") from None
            raise
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
