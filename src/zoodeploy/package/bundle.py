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
    samples/expected.json  their top-1 and probabilities, from the variant's runner; `targets`: the
                         same on the target ISA's own device (arm64 for mobile), where one could run them
    mobile/              (target mobile) required_operators.config, usability_report.txt

Every file is written once; the device step (`PackageConfig.on_device`, from zoodeploy.device)
only returns what it computed.
"""

from __future__ import annotations

import base64
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zoodeploy.artifact import Artifact
from zoodeploy.card import CARD_FILE, ModelCard, Runtime, Variant, versions
from zoodeploy.errors import ArtifactError, MissingDependencyError, ZoodeployError
from zoodeploy.fileio import atomic_path, sha256_file, staging_dir, write_json, write_text
from zoodeploy.package import mobile, predict
from zoodeploy.package.archive import write_archive
from zoodeploy.package.requirements import openvino_requirements, requirements_txt, runtime_requirements
from zoodeploy.package.verify import CODE_FILES, BundleReport, verify_bundle
from zoodeploy.preprocess import load_image, preprocess_batch, softmax, to_rgb
from zoodeploy.target import Target, TargetIsa, target_isa_for

# the runner's outputs vs the device's, per probability: fp32 differs only by summation order;
# reduced precision also by kernels that differ between CPUs and ORT releases
PROB_ATOL = {"fp32": 1e-4, "fp16": 5e-3, "int8": 2e-2, "mixed": 2e-2}
# on-target expected outputs vs a device of the same ISA, per probability: the integer math of
# INT8 kernels is exact, what differs between ARM kernel variants and ORT releases is rounding
TARGET_PROB_ATOL = {"fp32": 1e-4, "fp16": 2e-3, "bf16": 2e-3, "int8": 5e-3, "mixed": 5e-3}
PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}  # 8-bit modes a PNG keeps exactly
EDGE_TARGETS = (Target.cpu, Target.mobile)


@dataclass(frozen=True)
class TargetOutputs:
    """A bundle's sample images as a device of the target ISA computes them, and what computed them."""

    probabilities: np.ndarray  # (samples, classes)
    device: str  # the device, as a person would name it
    runtime: dict[str, str]  # the runtime there and its version, e.g. {"onnxruntime": "1.20.1"}


# How packaging runs a staged bundle on a device of the target ISA: (runnable bundle folder, its
# sample images relative to it, the ISA, make the device if need be) -> the outputs there, or why
# there are none. zoodeploy.device provides it (`expectations.target_outputs`) and the caller passes
# it in: the device layer runs the bundles this module stages, so package never imports it.
RunOnTarget = Callable[[Path, list[str], str, bool], "TargetOutputs | str"]


@dataclass
class PackageConfig:
    variant: str = "selected"  # a variant name, or the card's selected one (`resolve_variant`)
    target: Target = Target.cpu  # cpu: model.onnx; mobile: model.ort for ORT Mobile / minimal builds
    samples: int = 8  # images from the test split, with their expected outputs
    # the CPU class the bundle is for (default: `target_isa_for`, arm64 for mobile); its device's own
    # outputs are expected too, where `on_device` can run the bundle there (made if need be when named)
    target_isa: TargetIsa | str | None = None
    runtime: Runtime | None = None  # ship this runtime's path of the variant (default: the variant's own)
    on_device: RunOnTarget | None = None  # how to run the bundle on the target ISA's device; None: nowhere
    sign: Path | None = None  # Ed25519 private key (PEM): write manifest.sig, a detached signature of the manifest

    def __post_init__(self):
        self.target = Target(self.target)
        if self.target not in EDGE_TARGETS:
            raise ZoodeployError(f"edge bundles are for --target {' or '.join(EDGE_TARGETS)}, not {self.target}")
        if self.runtime is not None and self.runtime not in (Runtime.onnxruntime, Runtime.openvino):
            raise ZoodeployError(f"--runtime must be onnxruntime or openvino, got {self.runtime!r}")
        self.runtime = Runtime(self.runtime) if self.runtime is not None else None
        if not 1 <= self.samples <= 64:
            raise ZoodeployError(f"--samples must be between 1 and 64, got {self.samples}")

    @property
    def isa(self) -> TargetIsa:
        return target_isa_for(self.target, self.target_isa)


@dataclass
class Bundle:
    path: Path
    sha256: str
    bytes: int
    manifest: dict[str, Any]
    report: BundleReport
    notes: list[str] = field(default_factory=list)


def package(artifact: Artifact | str | Path, out: str | Path, cfg: PackageConfig | None = None) -> Bundle:
    """Write the bundle for one variant of `artifact` to `out` (atomically), verified as written."""
    art, out, cfg = Artifact.of(artifact), Path(out), cfg or PackageConfig()
    if out.is_dir():
        raise ArtifactError(f"{out} is a folder; give the bundle file to write, e.g. -o {out / 'bundle.tar.gz'}")
    card = art.card
    variant = runtime_variant(card, art.resolve_variant(cfg.variant), cfg.runtime)
    _check_packageable(card, variant)
    if variant.runtime is Runtime.openvino and cfg.target is Target.mobile:
        raise ArtifactError(f"variant {variant.name!r} runs on OpenVINO; mobile bundles carry ONNX Runtime "
                            "models: add --runtime onnxruntime")
    if card.data is None:
        raise ArtifactError(f"{card.name}: the card records no data set, so there is no test split to take "
                            "sample images from; re-train with `zoodeploy train`")
    private_key = load_signing_key(cfg.sign) if cfg.sign else None  # a bad key fails before any work
    with staging_dir("zoodeploy-package") as tmp:
        root = tmp / bundle_name(card, variant, cfg.target)
        root.mkdir()
        manifest, target_notes = stage(art, variant, root, cfg)
        if private_key is not None:
            sign_manifest(root, private_key)
        notes = _notes(variant) + (target_notes if cfg.target_isa else [])  # asked for: say why there are none
        with atomic_path(out) as tmp_archive:
            write_archive(root, tmp_archive, mtime=int(time.time()))
            # the archive itself, exactly as it will land (and its signature, with the key's public half)
            report = (verify_bundle(tmp_archive, key=_public_pem(private_key)) if private_key
                      else verify_bundle(tmp_archive))
    return Bundle(path=out, sha256=report.archive_sha256, bytes=out.stat().st_size, manifest=manifest,
                  report=report, notes=notes)


def load_signing_key(path: Path):
    """An Ed25519 private key from a PEM file (`openssl genpkey -algorithm ed25519 -out key.pem`)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        raise MissingDependencyError("signing bundles (cryptography)", "pip install cryptography") from None
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as e:
        raise ArtifactError(f"cannot read the signing key {path}: {e.strerror or e}") from None
    except (ValueError, TypeError) as e:
        raise ArtifactError(f"{path} is not an unencrypted PEM private key ({e}); make one with "
                            "`openssl genpkey -algorithm ed25519 -out key.pem`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ArtifactError(f"{path} holds a {type(key).__name__}; bundles are signed with Ed25519 keys "
                            "(`openssl genpkey -algorithm ed25519 -out key.pem`)")
    return key


def sign_manifest(root: Path, key) -> None:
    """manifest.sig: the base64 Ed25519 signature of manifest.json's bytes, detached beside it."""
    signature = key.sign((root / predict.MANIFEST).read_bytes())
    write_text(root / predict.SIGNATURE, base64.b64encode(signature).decode() + "\n")


def _public_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


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


def stage(art: Artifact, variant: Variant, root: Path, cfg: PackageConfig) -> tuple[dict[str, Any], list[str]]:
    """Write every bundle file into folder `root`, each once, manifest.json last: (the manifest,
    notes on why the target ISA's own outputs are not in it, when they are not)."""
    card, source, isa = art.card, art.file(variant), cfg.isa
    if cfg.target is Target.mobile or source.suffix == ".ort":
        placed = mobile.place_mobile(art, variant, source, root, target_isa=isa.value)
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
    samples = write_samples(art, variant, root, cfg.samples, model=converted)
    runtime = runtime_requirements(root / model_name, _built_with())
    if variant.runtime is Runtime.openvino:
        runtime = openvino_requirements(runtime, samples.settings)
    write_text(root / "requirements.txt", requirements_txt(runtime))
    manifest = build_manifest(art, variant, cfg, model_name, runtime, placed)
    on_target, notes = {}, []
    if isa is not TargetIsa.host:  # the samples' outputs as the target's kernels compute them
        found = _run_on_target(root, manifest, samples.files, isa.value, cfg)
        if isinstance(found, str):
            notes.append(f"samples/expected.json holds the build host's outputs only, no {isa.value} ones: {found}")
        else:
            on_target[isa.value] = _target_record(found, samples, variant)
    write_json(root / predict.EXPECTED, expected_outputs(card, variant, samples, on_target))
    manifest["samples"] = samples.manifest_entry(on_target)
    manifest["files"] = _file_table(root)
    write_json(root / predict.MANIFEST, manifest)
    return manifest, notes


def _file_table(root: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file()}


def _run_on_target(root: Path, manifest: dict[str, Any], images: list[str], isa: str,
                   cfg: PackageConfig) -> TargetOutputs | str:
    """The sample images run on `isa`'s device by `cfg.on_device`, through a runnable copy of the
    bundle so far (its predict.py needs a manifest of the files it has; the bundle's own manifest
    is written once, after)."""
    if cfg.on_device is None:
        return "no device was given to run the bundle on (zoodeploy.device.expectations.target_outputs)"
    with staging_dir("zoodeploy-on-target") as tmp:
        runnable = tmp / root.name
        shutil.copytree(root, runnable)
        write_json(runnable / predict.MANIFEST, {**manifest, "files": _file_table(runnable)})
        return cfg.on_device(runnable, images, isa, cfg.target_isa is not None)


def _target_record(found: TargetOutputs, samples: Samples, variant: Variant) -> dict[str, Any]:
    """expected.json's `targets[isa]`: the samples' outputs on that ISA's device, its tolerance, and how."""
    probs = np.asarray(found.probabilities, np.float64)
    return {"top1": [int(p.argmax()) for p in probs], "probabilities": [[float(v) for v in p] for p in probs],
            "prob_atol": TARGET_PROB_ATOL.get(str(variant.precision), 5e-3),
            "computed_with": {"device": found.device, **found.runtime,
                              "max_abs_diff_vs_build_host": float(np.abs(probs - samples.probabilities).max())}}


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


def save_png(img: Image.Image, path: Path) -> None:
    """Lossless PNG of the decoded image; modes a PNG cannot hold go through preprocessing's to_rgb."""
    (img if img.mode in PNG_MODES else to_rgb(img)).save(path, format="PNG")


@dataclass(frozen=True)
class Samples:
    """The bundle's sample images and their outputs on the build host."""

    files: list[str]  # relative to the bundle
    indices: list[int]  # into the test split
    labels: list[int]  # their true labels (-1: unlabelled)
    probabilities: np.ndarray  # (samples, classes), from the variant's runner
    computed_with: dict[str, Any]  # which file, and the runner's settings
    settings: dict[str, Any]  # the runner's settings alone
    prob_atol: float

    def manifest_entry(self, on_target: dict[str, Any]) -> dict[str, Any]:
        """manifest.json's `samples`."""
        return {"file": predict.EXPECTED, "count": len(self.files), "split": "test",
                "test_indices": self.indices, "prob_atol": self.prob_atol,
                **({"computed_with": self.settings} if self.settings.get("runtime") == "openvino" else {}),
                **({"targets": {isa: t["computed_with"] for isa, t in on_target.items()}} if on_target else {})}


def write_samples(art: Artifact, variant: Variant, root: Path, n: int, model: Path | None = None) -> Samples:
    """Sample PNGs from the test split, and their expected outputs from the variant's runner, or
    from ONNX Runtime on `model`, the bundle's own file, where it was converted while packaging.

    The expected outputs are computed from the PNG files as written, through the card's
    preprocessing and `zoodeploy.runtime`, so the device repeats exactly this computation.
    """
    from zoodeploy.evaluate.accuracy import run_batched
    from zoodeploy.runtime import RunOptions, open_runner
    from zoodeploy.runtime.ort import OrtRunner
    card, test = art.card, art.splits().test
    (root / "samples").mkdir()
    picked = pick_samples(test.labels, n)
    files = []
    for j, i in enumerate(picked):
        name = f"samples/{j:02d}_{_slug(_label(card, test.labels[i]))}.png"
        save_png(test.image(i), root / name)
        files.append(name)
    x = preprocess_batch([load_image(root / f) for f in files], card.preprocessing)
    runner = open_runner(art, variant.name) if model is None else OrtRunner(model, variant.name, RunOptions())
    with runner:
        probs = softmax(run_batched(runner, x))
        settings = runner.settings
    computed_with = {"variant": variant.name, "file": model.name if model else variant.file,
                     **({"converted_from": variant.file} if model else {}), **settings}
    return Samples(files=files, indices=picked, labels=[int(test.labels[i]) for i in picked], probabilities=probs,
                   computed_with=computed_with, settings=settings,
                   prob_atol=PROB_ATOL.get(str(variant.precision), 2e-2))


def expected_outputs(card: ModelCard, variant: Variant, samples: Samples,
                     on_target: dict[str, Any]) -> dict[str, Any]:
    """samples/expected.json: the build host's outputs on each sample, and any target ISA's."""
    rows = [{"file": f, "source": f"{card.data.source} test split, index {i}",
             "true_label": _label(card, k, None), "top1": int(p.argmax()),
             "top1_label": card.labels[int(p.argmax())], "probabilities": [float(v) for v in p]}
            for f, i, k, p in zip(samples.files, samples.indices, samples.labels, samples.probabilities)]
    return {"tolerance": {"prob_atol": samples.prob_atol,
                          "rule": "every probability within prob_atol; same top-1 unless the expected "
                                  "top-2 margin is under 2 * prob_atol"},
            "computed_with": samples.computed_with, "samples": rows,
            **({"targets": on_target} if on_target else {})}


# ---------------------------------------------------------------- manifest

def build_manifest(art: Artifact, variant: Variant, cfg: PackageConfig, model_name: str, runtime: dict,
                   placed: mobile.MobileFiles | None) -> dict[str, Any]:
    """Everything but the samples and the file list: what the bundle is, needs, measured and came from."""
    card = art.card
    made_from = placed.ort_made_from if placed else None
    measured_on = f"variant {variant.name!r} ({variant.file})" + (
        "; model.ort is converted from it and checked against its outputs on the samples" if made_from else "")
    manifest = {
        "format": predict.FORMAT, "format_version": predict.FORMAT_VERSION,
        "name": card.name, "variant": variant.name, "target": cfg.target.value, "model": model_name,
        "precision": str(variant.precision),
        "input": {"name": card.input_name, "shape": ["N", *card.input_shape],
                  "dtype": card.preprocessing.dtype, "layout": card.preprocessing.layout.upper()},
        "output": {"name": card.output_name, "classes": card.num_classes},
        "runtime": runtime, "opset": runtime["opsets"].get("ai.onnx"),
        "accuracy": variant.accuracy.model_dump(mode="json") if variant.accuracy else None,
        "latency": {b: s.model_dump(mode="json") for b, s in variant.latency.items()},
        "measured_on": measured_on,
        "samples": None,  # `Samples.manifest_entry`, once the samples have run
        "source": _source(art, variant),
    }
    if placed:
        manifest["mobile"] = {"required_operators_config": mobile.CONFIG, "usability_report": mobile.REPORT,
                              "origin": placed.origin, "usability": placed.usability}
    return manifest


def _source(art: Artifact, variant: Variant) -> dict[str, Any]:
    card = art.card
    return {
        "artifact": str(art.path.resolve()), "card_sha256": sha256_file(art.path / CARD_FILE),
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
