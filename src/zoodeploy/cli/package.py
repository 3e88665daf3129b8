"""`zoodeploy package` and `zoodeploy verify-bundle`: self-verifying edge bundles."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from zoodeploy.cli.common import ArtifactArg, JsonFlag, console, print_json
from zoodeploy.package import BundleReport, PackageConfig, Target
from zoodeploy.package import package as make_bundle
from zoodeploy.package import verify_bundle as check_bundle


def package(
    artifact: ArtifactArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="Bundle file to write (.tar.gz).")],
    variant: Annotated[str, typer.Option(
        help="Variant to ship: `selected` (the card's pick), fp32, int8, int8-ort, ...")] = "selected",
    target: Annotated[Target, typer.Option(
        help="`cpu`: model.onnx; `mobile`: model.ort + minimal-build config + usability report.")] = Target.cpu,
    samples: Annotated[int, typer.Option(help="Test-split images the bundle checks itself with.")] = 8,
    json: JsonFlag = False,
) -> None:
    """Package one variant of ARTIFACT into a bundle that runs with onnxruntime, numpy and pillow only."""
    cfg = PackageConfig(variant=variant, target=target, samples=samples)
    with console.status(f"packaging {artifact.name} ({variant}, {target.value})"):
        bundle = make_bundle(artifact, out, cfg)
    m, r = bundle.manifest, bundle.report
    if json:
        print_json({"path": str(bundle.path), "sha256": bundle.sha256, "bytes": bundle.bytes,
                    "manifest": m, "verification": _report_dict(r), "notes": bundle.notes})
        return
    acc = m["accuracy"]
    _say(f"{m['name']} {m['variant']} ({m['target']}) -> {bundle.path} ({bundle.bytes / 1e6:.2f} MB, "
         f"{len(m['files'])} files)", tag="packaged")
    _say(f"  model {m['model']}: opset {m['opset']}, needs "
         + ", ".join(f"{k}{v}" for k, v in m["runtime"]["requirements"].items())
         + (f"; test top-1 {acc['top1']:.2f}% (n={acc['n']})" if acc else ""))
    _print_report(r)
    _say(f"  sha256 {bundle.sha256}")
    for note in bundle.notes:
        _say(note, tag="  note:", color="yellow")


def verify_bundle(
    bundle: Annotated[Path, typer.Argument(help="Bundle .tar.gz (or an extracted bundle folder).")],
    into: Annotated[Path | None, typer.Option(help="Extract into this new or empty folder and keep it.")] = None,
    json: JsonFlag = False,
) -> None:
    """Check every file of BUNDLE against its manifest, run its samples and compare with the expected outputs."""
    with console.status(f"verifying {bundle.name}"):
        report = check_bundle(bundle, into)
    if json:
        print_json(_report_dict(report))
        return
    _say(f"{bundle}: {report.name} {report.variant} ({report.target})", tag="ok")
    _print_report(report)


def _say(text: str, tag: str = "", color: str = "green") -> None:
    """One line on stderr: paths and hashes stay whole (no wrapping) and are never read as markup."""
    console.print((f"[{color}]{tag}[/] " if tag else "") + escape(text), soft_wrap=True, highlight=False)


def _report_dict(r: BundleReport) -> dict:
    return {**asdict(r), "ok": r.ok}


def _print_report(r: BundleReport) -> None:
    _say(f"  verified: {r.files_checked} files match manifest.json; {sum(s['ok'] for s in r.samples)}/"
         f"{len(r.samples)} samples match the expected outputs (max |dp| {r.max_abs_diff:.2g} <= "
         f"{r.prob_atol:g}) with onnxruntime {r.runtime.get('onnxruntime')}")
    if r.code_differs:
        _say(f"{', '.join(r.code_differs)} differ from this zoodeploy's copy: the bundle was made by another "
             "version; the device runs the bundle's own code", tag="  note:", color="yellow")
