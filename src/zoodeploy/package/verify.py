"""`verify-bundle`: extract safely, check every hash, run the samples, compare with expected."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoodeploy.errors import ValidationError
from zoodeploy.fileio import sha256_file, staging_dir
from zoodeploy.package import predict
from zoodeploy.package.archive import safe_extract

# files a bundle copies verbatim from the installed zoodeploy
CODE_FILES = {"predict.py": Path(predict.__file__),
              "preprocess.py": Path(predict.__file__).parents[1] / "preprocess.py"}


@dataclass
class BundleReport:
    """What a verification checked and measured."""

    name: str
    variant: str
    target: str
    files_checked: int
    samples: list[dict[str, Any]]
    prob_atol: float
    max_abs_diff: float
    runtime: dict[str, str]  # versions the samples ran with
    code_differs: list[str] = field(default_factory=list)  # bundle code not identical to this zoodeploy's
    archive_sha256: str | None = None
    manifest_sha256: str = ""
    signed_by: str | None = None  # the key fingerprint the manifest's signature was checked with
    pinned_sha256: bool = False  # the archive matched a hash given from a trusted channel

    @property
    def authenticity(self) -> str:
        """What the check proves: authenticity (a pinned hash, a signature) or only consistency."""
        if self.pinned_sha256 or self.signed_by:
            how = " and ".join(what for what, done in (("the archive's sha256 matches the pinned hash",
                                                        self.pinned_sha256),
                                                       (f"the manifest is signed by {self.signed_by}",
                                                        self.signed_by)) if done)
            return f"authentic: {how}"
        return ("consistent, not authenticated: the files match the manifest, but anyone can re-write a "
                "manifest; pin the archive with --expect-sha256 or check a signature with --key")

    @property
    def ok(self) -> bool:
        return all(s["ok"] for s in self.samples)


def verify_bundle(path: str | Path, into: str | Path | None = None, expect_sha256: str | None = None,
                  key: bytes | str | Path | None = None) -> BundleReport:
    """Verify a bundle archive (extracted into `into`, or a temp folder) or an extracted folder.

    `expect_sha256`: the archive's hash from a trusted channel, checked before anything is read;
    `key`: an Ed25519 public key (PEM bytes or its file) the manifest's signature must verify with.
    Raises ValidationError naming every file or sample that fails.
    """
    path, public = Path(path), _public_key(key)
    if path.is_dir():
        if expect_sha256:
            raise ValidationError(f"{path} is a folder: --expect-sha256 pins the archive; give the .tar.gz")
        return check_bundle_dir(path, public)
    pinned = _check_pin(path, expect_sha256)
    if into is not None:
        report = check_bundle_dir(safe_extract(path, Path(into)), public)
    else:
        with staging_dir("zoodeploy-bundle") as tmp:
            report = check_bundle_dir(safe_extract(path, tmp), public)
    report.archive_sha256, report.pinned_sha256 = pinned, bool(expect_sha256)
    return report


def _public_key(key: bytes | str | Path | None) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    try:
        return Path(key).read_bytes()
    except OSError as e:
        raise ValidationError(f"cannot read the key {key}: {e.strerror or e}") from None


def _check_pin(path: Path, expect_sha256: str | None) -> str:
    """The archive's sha256, refused unless it is the pinned one (when one is given)."""
    if expect_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expect_sha256.strip()):
        raise ValidationError(f"--expect-sha256 takes 64 hex digits, got {expect_sha256!r}")
    try:
        got = sha256_file(path)
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file") from None
    except OSError as e:
        raise ValidationError(f"{path}: {e.strerror or e}") from None
    if expect_sha256 is not None and got != expect_sha256.strip().lower():
        raise ValidationError(f"{path.name} has sha256 {got}, not the pinned {expect_sha256.strip().lower()}: it is "
                              "not the bundle you were given; nothing was extracted")
    return got


def check_bundle_dir(root: Path, key: bytes | None = None) -> BundleReport:
    """The device's own self-check, run by this zoodeploy on an extracted bundle folder."""
    result = predict.self_check(root, key=key)
    differs = [name for name, ours in CODE_FILES.items()
               if (root / name).is_file() and sha256_file(root / name) != sha256_file(ours)]
    return BundleReport(name=result["name"], variant=result["variant"], target=result["target"],
                        files_checked=result["files_checked"], samples=result["samples"],
                        prob_atol=result["prob_atol"], max_abs_diff=result["max_abs_diff"],
                        runtime=result["runtime"], code_differs=differs,
                        manifest_sha256=sha256_file(root / predict.MANIFEST), signed_by=result.get("signed_by"))
