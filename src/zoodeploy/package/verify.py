"""`verify-bundle`: extract safely, check every hash, run the samples, compare with expected."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoodeploy.fileio import sha256_file
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

    @property
    def ok(self) -> bool:
        return all(s["ok"] for s in self.samples)


def verify_bundle(path: str | Path, into: str | Path | None = None) -> BundleReport:
    """Verify a bundle archive (extracted into `into`, or a temp folder) or an extracted folder.

    Raises ValidationError naming every file or sample that fails.
    """
    path = Path(path)
    if path.is_dir():
        return check_bundle_dir(path)
    if into is not None:
        report = check_bundle_dir(safe_extract(path, Path(into)))
    else:
        with tempfile.TemporaryDirectory(prefix="zoodeploy-bundle-") as tmp:
            report = check_bundle_dir(safe_extract(path, Path(tmp)))
    report.archive_sha256 = sha256_file(path)
    return report


def check_bundle_dir(root: Path) -> BundleReport:
    """The device's own self-check, run by this zoodeploy on an extracted bundle folder."""
    result = predict.self_check(root)
    differs = [name for name, ours in CODE_FILES.items()
               if (root / name).is_file() and sha256_file(root / name) != sha256_file(ours)]
    return BundleReport(name=result["name"], variant=result["variant"], target=result["target"],
                        files_checked=result["files_checked"], samples=result["samples"],
                        prob_atol=result["prob_atol"], max_abs_diff=result["max_abs_diff"],
                        runtime=result["runtime"], code_differs=differs,
                        manifest_sha256=sha256_file(root / predict.MANIFEST))
