"""Bundle archives: written reproducibly, extracted only after every member is checked."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from zoodeploy.errors import ValidationError

MAX_MEMBERS = 10_000
MAX_BYTES = 16 << 30  # the largest zoo model is ~0.6 GB; anything near this is not a bundle
EXECUTABLE = {"predict.py"}


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


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract `archive` into the empty or new folder `dest`; returns the bundle folder in it."""
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
        if dest.exists() and any(dest.iterdir()):
            raise ValidationError(f"{dest} is not empty; extract into a new or empty folder")
        dest.mkdir(parents=True, exist_ok=True)
        # the stdlib's own "data" filter (Python >= 3.11.4) checks again as it extracts
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        try:
            tar.extractall(dest, members=members, **extra)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ValidationError(f"{archive} could not be extracted ({e}); copy it again") from None
    return dest / top
