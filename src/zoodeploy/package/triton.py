"""`package --format triton`: a Triton Inference Server model repository for one variant.

    DIR/<model>/config.pbtxt        platform, input/output, batching, instances, warm-up
    DIR/<model>/1/model.onnx        (model.plan for a TensorRT engine; + external weights)
    DIR/<model>/labels.txt          one label a line: Triton's classification extension
    DIR/<model>/preprocessing.json  what a client must do to an image first (Triton does not)
    DIR/<model>/manifest.json       every other file's sha256, the variant's measured figures
    --input image, beside it:
    DIR/<model>_preprocess/         Python-backend model: image bytes -> the card's input tensor
                                    (1/model.py, 1/preprocess.py: the bundles' copy, 1/preprocessing.json)
    DIR/<model>_image/              the ensemble clients send image bytes to: preprocess, then <model>

The model is named after the card, so a client calls `/v2/models/<model>/infer` on Triton,
on KServe and on `bentoml serve` alike. Batching policy (max batch, preferred sizes, queue
delay) comes from the variant's measured latency, by pure functions tested without a server.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from zoodeploy.artifact import Artifact
from zoodeploy.card import CARD_FILE, ModelCard, Variant, versions
from zoodeploy.errors import ArtifactError, ValidationError, ZoodeployError
from zoodeploy.fileio import sha256_file, write_json, write_text
from zoodeploy.target import Target, needs_gpu

FORMAT = "zoodeploy-triton-repository"
FORMAT_VERSION = 1
VERSION = "1"  # the one model version directory; the service's /v2 answers as version "1" too
LABELS, PREPROCESSING, MANIFEST, CONFIG = "labels.txt", "preprocessing.json", "manifest.json", "config.pbtxt"
PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}
DEFAULT_MAX_BATCH = 64
MIN_GAIN = 1.10  # a larger preferred batch must raise measured throughput by 10% to be worth waiting for
QUEUE_DELAY_US = (100, 5000, 500)  # clamp low, clamp high, default when nothing is measured
TARGETS = (Target.cpu, Target.gpu)  # instance_group KIND_CPU, KIND_GPU
PREPROCESS, IMAGE = "_preprocess", "_image"  # --input image: <model>_preprocess feeds <model> in ensemble <model>_image
IMAGE_INPUT = "image"  # the ensemble's input: encoded image bytes (TYPE_STRING), one a row


class InputKind(str, Enum):
    """What a client sends: the preprocessed tensor, or encoded image bytes (an ensemble preprocesses)."""

    tensor = "tensor"
    image = "image"


@dataclass
class RepositoryConfig:
    variant: str = "selected"  # a variant name, or the card's selected one (`resolve_variant`)
    target: Target | None = None  # cpu | gpu instances; default: gpu for a TensorRT engine, else cpu
    max_batch: int | None = None  # default: DEFAULT_MAX_BATCH, or the largest measured batch if larger
    instances: int = 1  # model instances per device
    input: InputKind = InputKind.tensor  # image: also the preprocessing model and the ensemble taking bytes

    def __post_init__(self):
        self.target = None if self.target is None else Target(self.target)
        self.input = InputKind(self.input)
        if self.target is not None and self.target not in TARGETS:
            raise ZoodeployError(f"Triton instances run on --target {' or '.join(TARGETS)}, not {self.target}")
        if self.max_batch is not None and self.max_batch < 1:
            raise ZoodeployError(f"--max-batch must be >= 1, got {self.max_batch}")
        if self.instances < 1:
            raise ZoodeployError(f"--instances must be >= 1, got {self.instances}")


@dataclass
class Repository:
    path: Path  # the repository root (DIR)
    model: str  # DIR/<model>
    variant: str
    target: Target  # where its instances run: cpu or gpu
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    image_model: str | None = None  # --input image: the ensemble clients send image bytes to

    @property
    def model_dir(self) -> Path:
        return self.path / self.model


# --- policy: pure functions over the card ------------------------------------------------------

def batch_dim(model_file: Path) -> int | None:
    """The first input's batch dimension: None when dynamic, else its fixed size."""
    if model_file.suffix != ".onnx":
        return None  # an engine's batch range is its optimization profile (1..--max-batch)
    import onnx
    graph = onnx.load(str(model_file), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    first = next(i for i in graph.input if i.name not in initializers)
    dim = first.type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None


def max_batch_size(variant: Variant, fixed_batch: int | None, wanted: int | None) -> int:
    """Triton's max_batch_size: 0 (no batching) for a fixed-batch model, else the requested or
    default cap, raised to the largest batch the card measured."""
    if fixed_batch is not None:
        return 0
    if wanted is not None:
        return wanted
    measured = [int(b) for b in variant.latency]
    return max([DEFAULT_MAX_BATCH, *measured])


def preferred_batch_sizes(variant: Variant, max_batch: int) -> list[int]:
    """Measured batch sizes (> 1) whose throughput beats every smaller kept size by MIN_GAIN."""
    kept, best = [], None
    for batch, stats in sorted(((int(b), s) for b, s in variant.latency.items()), key=lambda t: t[0]):
        if batch > max_batch:
            break
        if best is None or stats.throughput >= best * MIN_GAIN:
            if batch > 1:
                kept.append(batch)
            best = stats.throughput
    return kept


def queue_delay_us(variant: Variant) -> int:
    """How long the dynamic batcher may hold a request: about one single-image run (p50 at batch 1)."""
    low, high, default = QUEUE_DELAY_US
    single = variant.latency.get("1")
    if single is None:
        return default
    return int(min(high, max(low, round(single.p50_ms * 1000))))


def model_config(card: ModelCard, variant: Variant, platform: str, target: Target, max_batch: int,
                 fixed_batch: int | None, instances: int) -> dict[str, Any]:
    """config.pbtxt as data (see `to_pbtxt`), in the field names of Triton's ModelConfig."""
    shape, p = list(card.input_shape), card.preprocessing
    dtype = Sym("TYPE_UINT8" if p.dtype == "uint8" else "TYPE_FP32")
    batched = max_batch > 0
    dims_in = shape if batched else [fixed_batch, *shape]
    dims_out = [card.num_classes] if batched else [fixed_batch, card.num_classes]
    config: dict[str, Any] = {
        "name": card.name, "platform": platform, "max_batch_size": max_batch,
        # FORMAT_NCHW: an image tensor; Triton allows it only on 3 dims (the batch dimension implicit)
        "input": [{"name": card.input_name, "data_type": dtype,
                   **({"format": Sym(f"FORMAT_{p.layout.upper()}")} if batched else {}), "dims": dims_in}],
        "output": [{"name": card.output_name, "data_type": Sym("TYPE_FP32"), "dims": dims_out,
                    "label_filename": LABELS}],
        "instance_group": [{"count": instances, "kind": Sym("KIND_GPU" if target is Target.gpu else "KIND_CPU")}],
    }
    if batched:
        config["dynamic_batching"] = {"preferred_batch_size": preferred_batch_sizes(variant, max_batch),
                                      "max_queue_delay_microseconds": queue_delay_us(variant)}
    config["model_warmup"] = [{"name": "zeros", "batch_size": 1, "inputs": [{
        "key": card.input_name, "value": {"data_type": dtype, "dims": dims_in if batched else
                                           [1, *shape], "zero_data": True}}]}]
    return config


class Sym(str):
    """An enum value in protobuf text format: written bare, not quoted."""


def to_pbtxt(message: dict[str, Any], indent: int = 0) -> str:
    """Protobuf text format of a dict (lists are repeated fields; empty lists are left out)."""
    pad, lines = "  " * indent, []
    for key, value in message.items():
        for item in value if isinstance(value, list) and not _scalars(value) else [value]:
            if isinstance(item, dict):
                lines += [f"{pad}{key} {{", to_pbtxt(item, indent + 1), f"{pad}}}"]
            elif isinstance(item, list):
                if item:
                    lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in item)} ]")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    return "\n".join(line for line in lines if line)


def _scalars(values: list) -> bool:
    return all(not isinstance(v, dict) for v in values)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Sym) or isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- writing the repository --------------------------------------------------------------------

def make_repository(artifact: Artifact | str | Path, out: str | Path,
                    cfg: RepositoryConfig | None = None) -> Repository:
    """Write the Triton model repository for one variant of `artifact` into the new or empty folder `out`.

    Written beside `out` and moved into place when complete, then checked against its manifest.
    """
    artifact, out, cfg = Artifact.of(artifact), Path(out), cfg or RepositoryConfig()
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        repo = stage_repository(artifact, staging, cfg)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    repo.path = out
    verify_repository(out)
    return repo


def _check_out(out: Path) -> None:
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise ArtifactError(f"{out} exists and is not an empty folder; give a new folder for the repository")


def stage_repository(artifact: Artifact | str | Path, root: Path, cfg: RepositoryConfig) -> Repository:
    """Write every repository file under folder `root`; returns the Repository (path = root)."""
    art = Artifact.of(artifact)
    card = art.card
    variant = art.resolve_variant(cfg.variant)
    platform, model_file = _platform(card, variant)
    target = _target(variant, cfg.target)
    source = art.file(variant)  # checks the sha256 the card records
    fixed = batch_dim(source)
    max_batch = max_batch_size(variant, fixed, cfg.max_batch)
    model_dir = root / card.name
    (model_dir / VERSION).mkdir(parents=True)
    _copy_model(source, model_dir / VERSION / model_file)
    config = model_config(card, variant, platform, target, max_batch, fixed, cfg.instances)
    write_text(model_dir / CONFIG, to_pbtxt(config) + "\n")
    write_text(model_dir / LABELS, "".join(f"{label}\n" for label in card.labels))
    write_json(model_dir / PREPROCESSING, preprocessing_record(card))
    manifest = repository_manifest(art, variant, platform, f"{VERSION}/{model_file}", config, target)
    image_model = stage_image_models(card, root, max_batch, config) if cfg.input is InputKind.image else None
    manifest["input"], manifest["image_model"] = cfg.input.value, image_model
    manifest["files"] = _file_table(model_dir)
    write_json(model_dir / MANIFEST, manifest)
    notes = _notes(variant, target) + ([IMAGE_NOTE] if image_model else [])
    return Repository(root, card.name, variant.name, target, manifest, notes, image_model)


# --- --input image: a preprocessing model and an ensemble in front of the classifier -------------

PREPROCESS_MODEL = Path(__file__).with_name("triton_preprocess.py")  # copied as model.py, never imported here
IMAGE_NOTE = ("--input image: the preprocessing model runs in Triton's Python backend and needs numpy and Pillow "
              "in its Python environment (pip install pillow in the Triton image)")


def stage_image_models(card: ModelCard, root: Path, max_batch: int, classifier: dict[str, Any]) -> str:
    """Write `<model>_preprocess` (image bytes -> the card's input tensor, by the bundles' preprocess.py)
    and the ensemble `<model>_image` (bytes -> logits, labels for the classification extension)."""
    if max_batch == 0:
        raise ArtifactError(f"--input image needs a model with a dynamic batch dimension; {card.name}'s "
                            "export has a fixed batch: re-export it, or use --input tensor")
    from zoodeploy import preprocess
    prep, image = card.name + PREPROCESS, card.name + IMAGE
    tensor = classifier["input"][0]
    bytes_in = {"name": IMAGE_INPUT, "data_type": Sym("TYPE_STRING"), "dims": [1]}
    (root / prep / VERSION).mkdir(parents=True)
    shutil.copyfile(PREPROCESS_MODEL, root / prep / VERSION / "model.py")
    shutil.copyfile(preprocess.__file__, root / prep / VERSION / "preprocess.py")
    write_json(root / prep / VERSION / PREPROCESSING, preprocessing_record(card))
    _write_config(root / prep, {
        "name": prep, "backend": "python", "max_batch_size": max_batch, "input": [bytes_in],
        "output": [{"name": tensor["name"], "data_type": tensor["data_type"], "dims": tensor["dims"]}],
        "instance_group": [{"count": 1, "kind": Sym("KIND_CPU")}],
        "dynamic_batching": {"max_queue_delay_microseconds": classifier["dynamic_batching"]
                             ["max_queue_delay_microseconds"]}})
    (root / image / VERSION).mkdir(parents=True)
    write_text(root / image / VERSION / "ENSEMBLE", "an ensemble has no model file; Triton needs the version folder\n")
    write_text(root / image / LABELS, "".join(f"{label}\n" for label in card.labels))
    _write_config(root / image, {
        "name": image, "platform": "ensemble", "max_batch_size": max_batch, "input": [bytes_in],
        "output": [classifier["output"][0]],
        "ensemble_scheduling": {"step": [
            {"model_name": prep, "model_version": -1, "input_map": [{"key": IMAGE_INPUT, "value": IMAGE_INPUT}],
             "output_map": [{"key": tensor["name"], "value": "preprocessed"}]},
            {"model_name": card.name, "model_version": -1, "input_map": [{"key": tensor["name"],
                                                                           "value": "preprocessed"}],
             "output_map": [{"key": card.output_name, "value": card.output_name}]}]}})
    return image


def _write_config(model_dir: Path, config: dict[str, Any]) -> None:
    """config.pbtxt and a manifest of the folder's files, so `verify_repository` checks it too."""
    write_text(model_dir / CONFIG, to_pbtxt(config) + "\n")
    write_json(model_dir / MANIFEST, {"format": FORMAT, "format_version": FORMAT_VERSION, "name": config["name"],
                                      "files": _file_table(model_dir)})


def _platform(card: ModelCard, variant: Variant) -> tuple[str, str]:
    if variant.runtime not in PLATFORMS or Path(variant.file).suffix == ".ort":
        usable = [n for n, v in card.variants.items() if v.runtime in PLATFORMS and not v.file.endswith(".ort")]
        raise ArtifactError(f"variant {variant.name!r} ({variant.file}, {variant.runtime}) has no Triton backend "
                            f"here; package one of {', '.join(usable) or 'fp32 (export first)'}")
    return PLATFORMS[variant.runtime]


def _target(variant: Variant, wanted: Target | None) -> Target:
    if needs_gpu(variant):
        if wanted is Target.cpu:
            raise ArtifactError(f"variant {variant.name!r} is a TensorRT engine and runs only on an NVIDIA GPU; "
                                "use --target gpu or package an ONNX variant")
        return Target.gpu
    return wanted or Target.cpu


def _copy_model(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)
    extra = source.with_name(source.name + ".data")  # ONNX external weights keep their own name
    if extra.is_file():
        shutil.copyfile(extra, dest.parent / extra.name)


def preprocessing_record(card: ModelCard) -> dict[str, Any]:
    """What a client does to an image before sending the FP32 tensor (Triton serves tensors only)."""
    p = card.preprocessing
    return {"input": {"name": card.input_name, "shape": ["N", *card.input_shape],
                      "datatype": "UINT8" if p.dtype == "uint8" else "FP32", "layout": p.layout.upper()},
            "preprocessing": card.preprocessing.to_dict(), "labels": card.labels,
            "reference": "zoodeploy.preprocess.preprocess; an edge bundle (zoodeploy package) carries a runnable copy"}


def repository_manifest(art: Artifact, variant: Variant, platform: str, model_file: str,
                        config: dict[str, Any], target: Target) -> dict[str, Any]:
    """What the repository is and measured, and where it came from (the file list is added after)."""
    card = art.card
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": card.name, "variant": variant.name,
        "version": VERSION, "platform": platform, "model_file": model_file, "precision": variant.precision,
        "max_batch_size": config["max_batch_size"], "device": target.value,  # cpu | gpu
        "accuracy": variant.accuracy.model_dump(mode="json") if variant.accuracy else None,
        "latency": {b: s.model_dump(mode="json") for b, s in variant.latency.items()},
        "source": {"artifact": str(art.path.resolve()), "card_sha256": sha256_file(art.path / CARD_FILE),
                   "variant_file": variant.file, "variant_sha256": variant.sha256,
                   "packaged": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions()},
    }


def _file_table(model_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(model_dir).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(model_dir.rglob("*")) if p.is_file() and p.name != MANIFEST}


def _notes(variant: Variant, target: Target) -> list[str]:
    notes = []
    if not variant.latency:
        notes.append(f"variant {variant.name!r} has no measured latency: dynamic batching has no preferred "
                     "sizes; run `zoodeploy bench` before packaging to set them")
    if needs_gpu(variant):
        notes.append("a TensorRT plan runs only with the TensorRT version and GPU model that built it: use a "
                     "Triton image with that TensorRT release")
    elif target is Target.gpu:
        notes.append("KIND_GPU: Triton's onnxruntime backend runs the model with CUDA")
    return notes


def verify_repository(root: str | Path) -> dict[str, Any]:
    """Check every model folder's files against its manifest; returns the first model's manifest."""
    import json
    root = Path(root)
    manifests = sorted(root.glob(f"*/{MANIFEST}"))
    if not manifests:
        raise ValidationError(f"{root} holds no model with a {MANIFEST}; make it with "
                              "`zoodeploy package ARTIFACT --format triton -o DIR`")
    for path in manifests:
        manifest = json.loads(path.read_text())
        found = _file_table(path.parent)
        if found != manifest["files"]:
            bad = sorted(set(found) ^ set(manifest["files"]) |
                         {k for k in set(found) & set(manifest["files"]) if found[k] != manifest["files"][k]})
            raise ValidationError(f"{path.parent}: {', '.join(bad)} differ from {MANIFEST}")
    return json.loads(manifests[0].read_text())


def model_bytes(repo: Repository) -> int:
    """Size of the model file(s) in the version folder, for sizing the server's memory."""
    return sum(p.stat().st_size for p in (repo.model_dir / VERSION).iterdir() if p.is_file())


def memory_gib(repo: Repository) -> int:
    """A memory request for one Triton instance: the model four times over plus the server, in GiB."""
    return max(1, math.ceil((4 * model_bytes(repo) + 768 * 2**20) / 2**30))
