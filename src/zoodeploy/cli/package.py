"""`zoodeploy package` (edge bundles, Triton repositories, KServe deployments) and `zoodeploy verify-bundle`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from zoodeploy.cli.common import ArtifactArg, JsonFlag, console, print_json
from zoodeploy.package import BundleReport
from zoodeploy.package import verify_bundle as check_bundle
from zoodeploy.package.formats import FORMATS, Format, PackageOptions, bundle_report_lines, package_as
from zoodeploy.package.triton import InputKind
from zoodeploy.target import Target


def package(
    artifact: ArtifactArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="What to write: " + "; ".join(
        f"{name}: {FORMATS.get(name).output}" for name in FORMATS) + ".")],
    variant: Annotated[str, typer.Option(
        help="Variant to ship: `selected` (the card's pick), fp32, int8, int8-ort, ...")] = "selected",
    format: Annotated[Format, typer.Option(
        "--format", help="`edge`: a self-verifying bundle; `triton`: a Triton model repository; "
                         "`kserve`: that repository + an InferenceService and a Bento Deployment.")] = Format.edge,
    target: Annotated[Target | None, typer.Option(
        help="edge: `cpu` (model.onnx) or `mobile` (model.ort + minimal-build config); "
             "triton/kserve: `cpu` or `gpu` instances. Default: cpu (gpu for a TensorRT engine).")] = None,
    samples: Annotated[int, typer.Option(help="edge: test-split images the bundle checks itself with.")] = 8,
    max_batch: Annotated[int | None, typer.Option(
        help="triton/kserve: max_batch_size (default 64, or the largest batch the card measured).")] = None,
    runtime: Annotated[str | None, typer.Option(
        help="edge: `onnxruntime` or `openvino`: ship the variant's file on that runtime "
             "(default: the variant's own).")] = None,
    sign: Annotated[Path | None, typer.Option(
        help="edge: Ed25519 private key (PEM) to sign the manifest with (manifest.sig); "
             "`openssl genpkey -algorithm ed25519 -out key.pem`.")] = None,
    input: Annotated[InputKind, typer.Option(
        "--input", help="triton/kserve: `tensor` (clients preprocess) or `image`: also an ensemble "
                        "<model>_image that takes encoded image bytes and preprocesses them as the card says.")
    ] = InputKind.tensor,
    json: JsonFlag = False,
) -> None:
    """Package one variant of ARTIFACT: an edge bundle, a Triton model repository or a KServe deployment."""
    from zoodeploy.device.expectations import target_outputs  # a mobile bundle expects its arm64 device's outputs
    options = PackageOptions(variant=variant, target=target, samples=samples, max_batch=max_batch, runtime=runtime,
                             on_device=target_outputs, sign=sign, input=input.value)
    with console.status(f"packaging {artifact.name} ({variant}, {format.value})"):
        made = package_as(format.value, artifact, out, options)
    if json:
        print_json(made.record)
        return
    _say(made.headline, tag="packaged")
    for line in made.details:
        _say(line)
    for note in made.notes:
        _say(note, tag="  note:", color="yellow")


def verify_bundle(
    bundle: Annotated[Path, typer.Argument(help="Bundle .tar.gz (or an extracted bundle folder).")],
    into: Annotated[Path | None, typer.Option(help="Extract into this new or empty folder and keep it.")] = None,
    expect_sha256: Annotated[str | None, typer.Option(
        help="The archive's sha256 from a trusted channel (`package` prints it); checked before extracting.")] = None,
    key: Annotated[Path | None, typer.Option(
        help="Ed25519 public key (PEM): the manifest's signature (manifest.sig) must verify with it.")] = None,
    json: JsonFlag = False,
) -> None:
    """Check every file of BUNDLE against its manifest, run its samples and compare with the expected outputs.

    Without --expect-sha256 or --key this proves the bundle consistent, not authentic."""
    with console.status(f"verifying {bundle.name}"):
        report = check_bundle(bundle, into, expect_sha256=expect_sha256, key=key)
    if json:
        print_json(_report_dict(report))
        return
    _say(f"{bundle}: {report.name} {report.variant} ({report.target})", tag="ok")
    _print_report(report)


def _say(text: str, tag: str = "", color: str = "green") -> None:
    """One line on stderr: paths and hashes stay whole (no wrapping) and are never read as markup."""
    console.print((f"[{color}]{tag}[/] " if tag else "") + escape(text), soft_wrap=True, highlight=False)


def _report_dict(r: BundleReport) -> dict:
    return {**asdict(r), "ok": r.ok, "authenticity": r.authenticity}


def _print_report(r: BundleReport) -> None:
    for line in bundle_report_lines(r):
        _say(line)
