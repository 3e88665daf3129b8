"""Bundle archives: written reproducibly, extracted only after every member is checked."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from zoodeploy.errors import ArtifactError, ValidationError
from zoodeploy.fileio import owned_prefix, remove_orphans

MAX_MEMBERS = 10_000
MAX_BYTES = 16 << 30  # the largest zoo model is ~0.6 GB; anything near this is not a bundle
EXECUTABLE = {"predict.py"}
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"  # as predict.py names them
MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES = 16 << 20, 4096
# uncompressed bytes per archive byte: ONNX weights barely compress (~1.1x), PNG samples not at all;
# a member list that claims far more is a decompression bomb
MAX_RATIO, RATIO_FLOOR = 50, 64 << 20
MAX_UNLISTED_BYTES = 1 << 20


def write_archive(root: Path, out: Path, mtime: int) -> None:
    """tar.gz of folder `root` under its own name: sorted, owner-less, fixed times and modes."""
    def add(tar: tarfile.TarFile, path: Path) -> None:
        info = tarfile.TarInfo(PurePosixPath(root.name, *path.relative_to(root).parts).as_posix())
        info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
        if path.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            for child in sorted(path.iterdir()):
                add(tar, child)
        else:
            info.size, info.mode = path.stat().st_size, 0o755 if path.name in EXECUTABLE else 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)

    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        add(tar, root)


def _refuse(archive: Path, name: str, why: str) -> ValidationError:
    return ValidationError(f"{archive.name}: refusing to extract {name!r}: {why}; nothing was extracted "
                           "(the file is not a bundle made by `zoodeploy package`, or was tampered with)")


def check_members(archive: Path, members: list[tarfile.TarInfo]) -> str:
    """Refuse the whole archive unless every member is a plain file or folder inside one top folder.

    Returns the top folder's name. Runs before anything is written.
    """
    if not members:
        raise ValidationError(f"{archive.name} is an empty archive, not a bundle; re-make it with `zoodeploy package`")
    if len(members) > MAX_MEMBERS:
        raise _refuse(archive, members[MAX_MEMBERS].name, f"more than {MAX_MEMBERS} members")
    seen: set[str] = set()
    total = 0
    for m in members:
        name = m.name
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or PurePosixPath(name).is_absolute():
            raise _refuse(archive, name, "absolute path")
        if ".." in parts or "\\" in name or "\x00" in name:
            raise _refuse(archive, name, "path leaves the target directory")
        if m.issym() or m.islnk():
            raise _refuse(archive, name, f"link to {m.linkname!r}")
        if not (m.isfile() or m.isdir()):
            raise _refuse(archive, name, "device, fifo or other special file")
        if not parts or parts[0] in (".", ""):
            raise _refuse(archive, name, "member outside the bundle's top folder")
        key = PurePosixPath(*parts).as_posix()
        if key in seen and not m.isdir():
            raise _refuse(archive, name, "duplicate member (a later copy would overwrite the first)")
        seen.add(key)
        total += m.size
        if total > MAX_BYTES:
            raise _refuse(archive, name, f"more than {MAX_BYTES >> 30} GiB uncompressed")
    tops = {PurePosixPath(m.name).parts[0] for m in members}
    if len(tops) != 1:
        raise _refuse(archive, sorted(tops)[1], f"more than one top folder ({', '.join(sorted(tops)[:3])})")
    return tops.pop()


def _read_manifest(archive: Path, tar: tarfile.TarFile, members: list[tarfile.TarInfo], top: str) -> dict[str, Any]:
    """The archive's manifest.json, read into memory (bounded) before anything is written."""
    member = next((m for m in members if m.name == f"{top}/{MANIFEST}" and m.isfile()), None)
    if member is None:
        raise _refuse(archive, top, f"no {top}/{MANIFEST}")
    if member.size > MAX_MANIFEST_BYTES:
        raise _refuse(archive, member.name, f"a manifest of {member.size} bytes")
    try:
        manifest = json.loads(tar.extractfile(member).read(MAX_MANIFEST_BYTES))
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise _refuse(archive, member.name, f"unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise _refuse(archive, member.name, "a manifest without a file list")
    return manifest


def check_sizes(archive: Path, members: list[tarfile.TarInfo], top: str, manifest: dict[str, Any]) -> int:
    """Every file member no larger than the manifest records (a smaller one is named by the hash check
    after), files the manifest lacks small (the check names them too), and the total bounded by the
    archive's own size; returns the bytes extraction will write."""
    files, total, unlisted = manifest["files"], 0, 0
    for m in members:
        if m.isdir():
            continue
        rel = m.name[len(top) + 1:]
        entry = files.get(rel)
        if rel in (MANIFEST, SIGNATURE):
            limit = MAX_MANIFEST_BYTES if rel == MANIFEST else MAX_SIGNATURE_BYTES
            if m.size > limit:
                raise _refuse(archive, m.name, f"{m.size} bytes, over {limit}")
        elif not isinstance(entry, dict):
            unlisted += m.size
            if unlisted > MAX_UNLISTED_BYTES:
                raise _refuse(archive, m.name, f"files {MANIFEST} does not list, over {MAX_UNLISTED_BYTES} bytes")
        elif not isinstance(entry.get("bytes"), int) or m.size > entry["bytes"]:
            raise _refuse(archive, m.name, f"{m.size} bytes, but {MANIFEST} records {entry.get('bytes')!r}")
        total += m.size
    limit = max(RATIO_FLOOR, MAX_RATIO * archive.stat().st_size)
    if total > limit:
        raise _refuse(archive, top, f"{total} bytes uncompressed from a {archive.stat().st_size}-byte archive "
                                    f"(over {MAX_RATIO}x: a decompression bomb)")
    return total


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract `archive` into the empty or new folder `dest`; returns the bundle folder in it.

    Every member is checked against the manifest (read first, into memory) before a byte is
    written; extraction goes to a staging folder inside `dest`, renamed into place at the end, so a
    failure (a full disk, a kill) leaves no half-extracted bundle.
    """
    archive = Path(archive)
    try:
        tar = tarfile.open(archive, "r:*")
    except FileNotFoundError:
        raise ValidationError(f"{archive}: no such file") from None
    except (tarfile.TarError, OSError) as e:
        raise ValidationError(f"{archive} is not a tar archive ({e}); give the .tar.gz that "
                              "`zoodeploy package` wrote") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ValidationError(f"{archive} is truncated or corrupt ({e}); copy it again") from None
        top = check_members(archive, members)
        total = check_sizes(archive, members, top, _read_manifest(archive, tar, members, top))
        if dest.exists():
            remove_orphans(dest)  # a staging folder a killed extraction left
        if dest.exists() and any(dest.iterdir()):
            raise ValidationError(f"{dest} is not empty; extract into a new or empty folder")
        try:
            dest.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(dest).free
        except OSError as e:
            raise ArtifactError(f"cannot extract into {dest}: {e.strerror or e}") from None
        if total > free:
            raise ArtifactError(f"cannot extract {archive.name} into {dest}: it needs {total / 2**20:.1f} MiB, "
                                f"{free / 2**20:.1f} MiB are free; nothing was extracted")
        _extract_staged(archive, tar, members, dest, top)
    return dest / top


def _extract_staged(archive: Path, tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path,
                    top: str) -> None:
    staging = dest / (owned_prefix(".extract") + os.urandom(4).hex())
    # the stdlib's own "data" filter (Python >= 3.11.4) checks again as it extracts
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        staging.mkdir()
        tar.extractall(staging, members=members, **extra)
        os.rename(staging / top, dest / top)
    except (tarfile.TarError, OSError, EOFError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise ValidationError(f"{archive} could not be extracted into {dest} ({why}); nothing was left "
                              "there") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
