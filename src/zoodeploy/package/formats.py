"""Package formats in one registry: `edge` bundles, `triton` model repositories, `kserve` deployments.

Adding a format is one module with a `make(artifact, out, options) -> Packaged` and one line
below. Each answers in the same shape, so `zoodeploy package --format NAME` stays one command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoodeploy.errors import ZoodeployError
from zoodeploy.registry import Registry
from zoodeploy.target import Target

if TYPE_CHECKING:
    from zoodeploy.package.bundle import RunOnTarget


@dataclass(frozen=True)
class PackageOptions:
    variant: str = "selected"  # a variant name, or the card's selected one
    target: Target | None = None  # edge: cpu | mobile; triton / kserve: cpu | gpu. Default: cpu (gpu for a TensorRT engine)
    samples: int = 8  # edge: test-split images the bundle checks itself with
    max_batch: int | None = None  # triton / kserve: max_batch_size (default from the card)
    runtime: str | None = None  # edge: onnxruntime | openvino, that runtime's path of the variant
    on_device: RunOnTarget | None = None  # edge: runs the bundle on its target ISA's device (zoodeploy.device)
    sign: Path | None = None  # edge: Ed25519 private key (PEM) to sign the manifest with
    input: str = "tensor"  # triton / kserve: tensor, or image (an ensemble takes encoded image bytes)


@dataclass
class Packaged:
    """What any format made: where, a headline and detail lines for people, a record for --json."""

    path: Path
    headline: str
    details: list[str]
    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PackageFormat:
    make: Callable[[Path, Path, PackageOptions], Packaged]
    output: str  # what -o names, for the help text
    targets: tuple[Target, ...]

    def check(self, name: str, options: PackageOptions) -> None:
        if options.target is not None and Target(options.target) not in self.targets:
            raise ZoodeployError(f"--target {options.target} does not apply to --format {name}; "
                                 f"use {' or '.join(self.targets)}")


def _edge(artifact: Path, out: Path, options: PackageOptions) -> Packaged:
    from zoodeploy.package.bundle import PackageConfig, package
    bundle = package(artifact, out, PackageConfig(variant=options.variant, target=options.target or Target.cpu,
                                                  samples=options.samples, runtime=options.runtime,
                                                  on_device=options.on_device, sign=options.sign))
    m, r = bundle.manifest, bundle.report
    acc = m["accuracy"]
    details = [f"  model {m['model']}: opset {m['opset']}, needs "
               + ", ".join(f"{k}{v}" for k, v in m["runtime"]["requirements"].items())
               + (f"; test top-1 {acc['top1']:.2f}% (n={acc['n']})" if acc and acc.get("top1") is not None else ""),
               *bundle_report_lines(r, authenticity=False),
               *([f"  signed: manifest.sig by {r.signed_by}"] if r.signed_by else []), f"  sha256 {bundle.sha256} (pin it: verify-bundle --expect-sha256 "
                                        f"{bundle.sha256})"]
    record = {"path": str(bundle.path), "sha256": bundle.sha256, "bytes": bundle.bytes, "manifest": m,
              "verification": {**asdict(r), "ok": r.ok}, "notes": bundle.notes}
    headline = (f"{m['name']} {m['variant']} ({m['target']}) -> {bundle.path} ({bundle.bytes / 1e6:.2f} MB, "
                f"{len(m['files'])} files)")
    return Packaged(bundle.path, headline, details, record, bundle.notes)


def bundle_report_lines(r, authenticity: bool = True) -> list[str]:
    """What `package` and `verify-bundle` say about a verified bundle (a BundleReport)."""
    from zoodeploy.package import predict
    lines = [f"  verified: {r.files_checked} files match manifest.json; {sum(s['ok'] for s in r.samples)}/"
             f"{len(r.samples)} samples match the expected outputs (max |dp| {r.max_abs_diff:.2g} <= "
             f"{r.prob_atol:g}) with {predict.engine_of(r.runtime)}"]
    if r.code_differs:
        lines.append(f"  note: {', '.join(r.code_differs)} differ from this zoodeploy's copy: the bundle was made "
                     "by another version, or altered; the device runs the bundle's own code")
    if authenticity:
        lines.append(f"  {r.authenticity}")
    return lines


def _repository_config(options: PackageOptions):
    from zoodeploy.package.triton import RepositoryConfig
    return RepositoryConfig(variant=options.variant, target=options.target, max_batch=options.max_batch,
                            input=options.input)


def _triton(artifact: Path, out: Path, options: PackageOptions) -> Packaged:
    from zoodeploy.package.triton import make_repository
    repo = make_repository(artifact, out, _repository_config(options))
    return Packaged(repo.path, _repo_headline(repo, repo.path), _repo_details(repo),
                    {"path": str(repo.path), "model": repo.model, "manifest": repo.manifest, "notes": repo.notes},
                    repo.notes)


def _kserve(artifact: Path, out: Path, options: PackageOptions) -> Packaged:
    from zoodeploy.package.kserve import BENTO, ISVC, make_deployment
    d = make_deployment(artifact, out, _repository_config(options))
    details = [*_repo_details(d.repository),
               f"  {d.path / ISVC}: InferenceService {d.service_name} (Triton, protocol v2)",
               f"  {d.path / BENTO}: the `bentoml containerize` route (Deployment + Service)"]
    record = {"path": str(d.path), "repository": str(d.repository.path), "inference_service": d.service_name,
              "manifest": d.manifest, "repository_manifest": d.repository.manifest, "notes": d.notes}
    return Packaged(d.path, _repo_headline(d.repository, d.path), details, record, d.notes)


def _repo_headline(repo, path: Path) -> str:
    m = repo.manifest
    return f"{m['name']} {m['variant']} ({m['platform']}, {m['device']}) -> {path}"


def _repo_details(repo) -> list[str]:
    m = repo.manifest
    return [f"  {repo.model_dir}: {m['model_file']}, config.pbtxt (max_batch_size {m['max_batch_size']}), "
            f"labels.txt, preprocessing.json; {len(m['files'])} files match manifest.json",
            f"  model sha256 {m['source']['variant_sha256']}"]


FORMATS: Registry[PackageFormat] = Registry("package format")
FORMATS.add("edge", PackageFormat(_edge, "bundle file (.tar.gz)", (Target.cpu, Target.mobile)))
FORMATS.add("triton", PackageFormat(_triton, "new folder: the model repository", (Target.cpu, Target.gpu)))
FORMATS.add("kserve", PackageFormat(_kserve, "new folder: repository/ + manifests", (Target.cpu, Target.gpu)))

Format = Enum("Format", {name: name for name in FORMATS}, type=str)  # for Typer's choices


def package_as(name: str, artifact: str | Path, out: str | Path, options: PackageOptions | None = None) -> Packaged:
    """Package `artifact` in format `name` (see FORMATS) to `out`."""
    fmt, options = FORMATS.get(name), options or PackageOptions()
    fmt.check(name, options)
    return fmt.make(Path(artifact), Path(out), options)
