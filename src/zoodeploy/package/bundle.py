"""`package`: one variant, its card essentials and a runtime-only predictor, in a self-verifying bundle.

Layout of the archive (one top folder, `<model>-<variant>-<target>/`):

    manifest.json        every other file with its sha256; runtime needs; opsets; the variant's
                         measured accuracy and latency; where it all came from
    model.onnx | model.ort
    model.json           card essentials: labels, preprocessing, input spec
    predict.py           runtime-only predictor and self-check (onnxruntime, numpy, pillow)
    preprocess.py        verbatim copy of zoodeploy/preprocess.py
    requirements.txt
    samples/*.png        images from the artifact's test split
    samples/expected.json  their top-1 and probabilities, from the variant's runner
    mobile/              (target mobile) required_operators.config, usability_report.txt
"""

from __future__ import annotations

import json
import re
import shutil
import importlib
import tempfile
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zoodeploy.card import ModelCard, Runtime, Variant, load_card, variant_path, versions
from zoodeploy.errors import ArtifactError, ZoodeployError
from zoodeploy.fileio import atomic_path, sha256_file, write_json, write_text
from zoodeploy.package import mobile, predict
from zoodeploy.package.archive import write_archive
from zoodeploy.package.requirements import openvino_requirements, requirements_txt, runtime_requirements
from zoodeploy.package.verify import CODE_FILES, BundleReport, verify_bundle
from zoodeploy.preprocess import load_image, preprocess_batch, softmax, to_rgb
from zoodeploy.registry import Registry

# the runner's outputs vs the device's, per probability: fp32 differs only by summation order;
# reduced precision also by kernels that differ between CPUs and ORT releases
PROB_ATOL = {"fp32": 1e-4, "fp16": 5e-3, "int8": 2e-2, "mixed": 2e-2}
PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}  # 8-bit modes a PNG keeps exactly

# Per target ISA, the step that records a staged bundle's sample outputs as that ISA's own device
# computes them, as "module:function" imported when a bundle needs it (as the passes are):
# (bundle folder, isa, precision, make the device if need be) -> a note when there is no such
# device here, else None. zoodeploy.device runs the bundles this module stages: it sits above
# package, so package names it here and never imports it at load time.
TARGET_DEVICES: Registry[str] = Registry("target device")
TARGET_DEVICES.add("arm64", "zoodeploy.device.expectations:add_target_expectations")


class Target(str, Enum):
    cpu = "cpu"  # model.onnx for the ONNX Runtime Python package on any CPU
    mobile = "mobile"  # model.ort for ORT Mobile / minimal builds, with their config and report


@dataclass
class PackageConfig:
    variant: str = "selected"  # a variant name, or the card's selected one
    target: Target = Target.cpu
    samples: int = 8  # images from the test split, with their expected outputs
    target_isa: str | None = None  # also expect outputs computed on this ISA's device (TARGET_DEVICES; made if need be)
    runtime: Runtime | None = None  # ship this runtime's path of the variant (default: the variant's own)

    def __post_init__(self):
        self.target = Target(self.target)
        if self.runtime is not None and self.runtime not in (Runtime.onnxruntime, Runtime.openvino):
            raise ZoodeployError(f"--runtime must be onnxruntime or openvino, got {self.runtime!r}")
        self.runtime = Runtime(self.runtime) if self.runtime is not None else None
        if not 1 <= self.samples <= 64:
            raise ZoodeployError(f"--samples must be between 1 and 64, got {self.samples}")


@dataclass
class Bundle:
    path: Path
    sha256: str
    bytes: int
    manifest: dict[str, Any]
    report: BundleReport
    notes: list[str] = field(default_factory=list)


def package(artifact: str | Path, out: str | Path, cfg: PackageConfig | None = None) -> Bundle:
    """Write the bundle for one variant of `artifact` to `out` (atomically), verified as written."""
    artifact, out, cfg = Path(artifact), Path(out), cfg or PackageConfig()
    if out.is_dir():
        raise ArtifactError(f"{out} is a folder; give the bundle file to write, e.g. -o {out / 'bundle.tar.gz'}")
    card = load_card(artifact)
    variant = runtime_variant(card, card.variant(cfg.variant), cfg.runtime)
    _check_packageable(card, variant)
    if variant.runtime is Runtime.openvino and cfg.target is Target.mobile:
        raise ArtifactError(f"variant {variant.name!r} runs on OpenVINO; mobile bundles carry ONNX Runtime "
                            "models: add --runtime onnxruntime")
    source = variant_path(artifact, variant)
    if card.data is None:
        raise ArtifactError(f"{card.name}: the card records no data set, so there is no test split to take "
                            "sample images from; re-train with `zoodeploy train`")
    with tempfile.TemporaryDirectory(prefix="zoodeploy-package-") as tmp:
        root = Path(tmp) / bundle_name(card, variant, cfg.target)
        root.mkdir()
        manifest = stage(artifact, card, variant, source, root, cfg)
        notes = _notes(variant)
        isa = cfg.target_isa or (mobile.MOBILE_ISA if cfg.target is Target.mobile else None)
        # the samples' outputs as the target's kernels compute them (mobile: on a device made here)
        if isa and (cfg.target_isa or isa in TARGET_DEVICES):
            note = _target_step(isa)(root, isa, variant.precision, cfg.target_isa is not None)
            notes += [note] if note and cfg.target_isa else []
            manifest = json.loads((root / predict.MANIFEST).read_text())
        with atomic_path(out) as tmp_archive:
            write_archive(root, tmp_archive, mtime=int(time.time()))
            report = verify_bundle(tmp_archive)  # the archive itself, exactly as it will land
    return Bundle(path=out, sha256=report.archive_sha256, bytes=out.stat().st_size, manifest=manifest,
                  report=report, notes=notes)


def bundle_name(card: ModelCard, variant: Variant, target: Target) -> str:
    return _slug(f"{card.name}-{variant.name}-{target.value}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def runtime_variant(card: ModelCard, variant: Variant, runtime: Runtime | None) -> Variant:
    """The variant that runs `variant`'s file (same sha256) on `runtime`: itself by default; for
    an OpenVINO variant and onnxruntime, its source; for an ONNX one and openvino, its f32 twin."""
    if runtime is None or variant.runtime is runtime:
        return variant
    twins = [v for v in card.variants.values() if v.runtime is runtime and v.sha256 == variant.sha256]
    twins.sort(key=lambda v: v.precision is not variant.precision)  # bf16 only when nothing else runs it
    if not twins:
        make = "`zoodeploy optimize --passes ov-fp32 / ov-fused / ov-int8`" if runtime is Runtime.openvino else "it"
        raise ArtifactError(f"variant {variant.name!r} ({variant.file}) has no {runtime.value} variant; make one with {make}")
    return twins[0]


def _check_packageable(card: ModelCard, variant: Variant) -> None:
    if variant.runtime not in (Runtime.onnxruntime, Runtime.openvino):
        onnx_variants = [n for n, v in card.variants.items() if v.runtime in (Runtime.onnxruntime, Runtime.openvino)]
        raise ArtifactError(f"variant {variant.name!r} runs on {variant.runtime}; edge bundles carry ONNX "
                            f"Runtime models: package one of {', '.join(onnx_variants) or 'fp32 (export first)'}")
    if Path(variant.file).suffix not in (".onnx", ".ort"):
        raise ArtifactError(f"variant {variant.name!r} is {variant.file}, neither .onnx nor .ort")


def _notes(variant: Variant) -> list[str]:
    missing = [what for what, v in (("accuracy", variant.accuracy), ("latency", variant.latency)) if not v]
    if not missing:
        return []
    return [f"variant {variant.name!r} has no measured {' or '.join(missing)} in the card; the manifest "
            "records none: run `zoodeploy evaluate` / `zoodeploy bench` before packaging"]


def stage(artifact: Path, card: ModelCard, variant: Variant, source: Path, root: Path,
          cfg: PackageConfig) -> dict[str, Any]:
    """Write every bundle file into folder `root`, manifest.json last; returns the manifest."""
    if cfg.target is Target.mobile or source.suffix == ".ort":
        placed = mobile.place_mobile(artifact, card, variant, source, root)
        model_name = mobile.MODEL
    else:
        shutil.copyfile(source, root / "model.onnx")
        placed, model_name = None, "model.onnx"
    write_json(root / predict.MODEL_INFO, {**card.essentials(), "variant": variant.name,
                                           "model": model_name})
    for name, src in CODE_FILES.items():
        shutil.copyfile(src, root / name)
    # a model converted here computes differently from the variant's own file (an int8 .onnx made
    # .ort for ARM took other QDQ fusions: |dp| up to 0.33 on x86): its outputs are the expected ones
    converted = root / model_name if placed and source.suffix != ".ort" else None
    samples = write_samples(artifact, card, variant, root, cfg.samples, model=converted)
    runtime = runtime_requirements(root / model_name, _built_with())
    if variant.runtime is Runtime.openvino:
        runtime = openvino_requirements(runtime, samples["computed_with"])
    write_text(root / "requirements.txt", requirements_txt(runtime))
    manifest = build_manifest(artifact, card, variant, cfg, model_name, runtime, samples, placed)
    manifest["files"] = {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                         for p in sorted(root.rglob("*")) if p.is_file()}
    write_json(root / predict.MANIFEST, manifest)
    return manifest


def _built_with() -> dict[str, str]:
    import onnxruntime
    import PIL
    return {"onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


# ---------------------------------------------------------------- samples

def pick_samples(labels: np.ndarray, n: int) -> list[int]:
    """Indices into the test split: one per class in turn (class 0, 1, ... then again), n in all."""
    by_class = [list(np.flatnonzero(labels == k)) for k in np.unique(labels)]
    out: list[int] = []
    while len(out) < min(n, len(labels)):
        for idx in by_class:
            if idx and len(out) < n:
                out.append(int(idx.pop(0)))
    return out


def _label(card: ModelCard, k, unlabelled: str | None = "unlabelled") -> str | None:
    """The class name of label index `k`; an unlabelled image (-1) has none."""
    return card.labels[int(k)] if int(k) >= 0 else unlabelled


def _target_step(isa: str):
    module, _, func = TARGET_DEVICES.get(isa).partition(":")
    return getattr(importlib.import_module(module), func)


def save_png(img: Image.Image, path: Path) -> None:
    """Lossless PNG of the decoded image; modes a PNG cannot hold go through preprocessing's to_rgb."""
    (img if img.mode in PNG_MODES else to_rgb(img)).save(path, format="PNG")


def write_samples(artifact: Path, card: ModelCard, variant: Variant, root: Path, n: int,
                  model: Path | None = None) -> dict[str, Any]:
    """Sample PNGs from the test split, and their expected outputs from the variant's runner, or
    from ONNX Runtime on `model`, the bundle's own file, where it was converted while packaging.

    The expected outputs are computed from the PNG files as written, through the card's
    preprocessing and `zoodeploy.runtime`, so the device repeats exactly this computation.
    """
    from zoodeploy.evaluate.accuracy import run_batched
    from zoodeploy.models.data import splits_for
    from zoodeploy.runtime import open_runner
    test = splits_for(card.data).test
    (root / "samples").mkdir()
    picked = pick_samples(test.labels, n)
    files = []
    for j, i in enumerate(picked):
        name = f"samples/{j:02d}_{_slug(_label(card, test.labels[i]))}.png"
        save_png(test.image(i), root / name)
        files.append(name)
    x = preprocess_batch([load_image(root / f) for f in files], card.preprocessing)
    if model is None:
        runner = open_runner(artifact, variant.name, card=card)
    else:
        from zoodeploy.runtime import RunOptions
        from zoodeploy.runtime.ort import OrtRunner
        runner = OrtRunner(model, variant.name, RunOptions())
    try:
        probs = softmax(run_batched(runner, x))
        settings = runner.settings
    finally:
        runner.close()
    samples = [{"file": f, "source": f"{card.data.source} test split, index {i}",
                "true_label": _label(card, test.labels[i], None), "top1": int(p.argmax()),
                "top1_label": card.labels[int(p.argmax())], "probabilities": [float(v) for v in p]}
               for f, i, p in zip(files, picked, probs)]
    expected = {"tolerance": {"prob_atol": PROB_ATOL.get(str(variant.precision), 2e-2),
                              "rule": "every probability within prob_atol; same top-1 unless the expected "
                                      "top-2 margin is under 2 * prob_atol"},
                "computed_with": {"variant": variant.name,
                                  "file": model.name if model else variant.file,
                                  **({"converted_from": variant.file} if model else {}), **settings},
                "samples": samples}
    write_json(root / predict.EXPECTED, expected)
    return {"file": predict.EXPECTED, "count": len(samples), "split": "test",
            "test_indices": picked, "prob_atol": expected["tolerance"]["prob_atol"],
            **({"computed_with": settings} if settings.get("runtime") == "openvino" else {})}


# ---------------------------------------------------------------- manifest

def build_manifest(artifact: Path, card: ModelCard, variant: Variant, cfg: PackageConfig, model_name: str,
                   runtime: dict, samples: dict, placed: mobile.MobileFiles | None) -> dict[str, Any]:
    """Everything but the file list: what the bundle is, needs, measured and came from."""
    made_from = placed.ort_made_from if placed else None
    measured_on = f"variant {variant.name!r} ({variant.file})" + (
        f"; model.ort is converted from it and checked against its outputs on the samples" if made_from else "")
    manifest = {
        "format": predict.FORMAT, "format_version": predict.FORMAT_VERSION,
        "name": card.name, "variant": variant.name, "target": cfg.target.value, "model": model_name,
        "precision": str(variant.precision),
        "input": {"name": card.input_name, "shape": ["N", 3, card.input_size, card.input_size],
                  "dtype": "float32", "layout": "NCHW"},
        "output": {"name": card.output_name, "classes": card.num_classes},
        "runtime": runtime, "opset": runtime["opsets"].get("ai.onnx"),
        "accuracy": variant.accuracy.model_dump(mode="json") if variant.accuracy else None,
        "latency": {b: s.model_dump(mode="json") for b, s in variant.latency.items()},
        "measured_on": measured_on,
        "samples": samples,
        "source": _source(artifact, card, variant),
    }
    if placed:
        manifest["mobile"] = {"required_operators_config": mobile.CONFIG, "usability_report": mobile.REPORT,
                              "origin": placed.origin, "usability": placed.usability}
    return manifest


def _source(artifact: Path, card: ModelCard, variant: Variant) -> dict[str, Any]:
    return {
        "artifact": str(artifact.resolve()), "card_sha256": sha256_file(artifact / "card.json"),
        "variant_file": variant.file, "variant_sha256": variant.sha256, "made_by": variant.made_by,
        "recipe": variant.recipe.model_dump(mode="json"),
        "validation": variant.validation.model_dump(mode="json") if variant.validation else None,
        "checkpoint_sha256": card.checkpoint_sha256, "weights": card.weights,
        "data": card.data.model_dump(mode="json") if card.data else None,
        "training": ({k: getattr(card.training, k) for k in ("epochs", "best_epoch", "val_accuracy",
                                                             "test_accuracy")} if card.training else None),
        "artifact_provenance": card.provenance.model_dump(mode="json"),
        "packaged": {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions()},
    }
