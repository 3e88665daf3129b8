"""The model card (`card.json`): the one record every pipeline stage reads and extends."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoodeploy.errors import ArtifactError
from zoodeploy.fileio import sha256_file, write_json
from zoodeploy.preprocess import Preprocessing

CARD_FILE = "card.json"
CHECKPOINT_FILE = "checkpoint.pt"
ONNX_METADATA_KEY = "zoodeploy.card"
SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Model):
    """Where the data came from and how it was split (deterministically, stratified)."""

    source: str  # "digits" or a directory path
    seed: int
    val_fraction: float
    test_fraction: float
    counts: dict[str, int]  # split -> number of images
    num_files: int | None = None  # for a directory: files found


class Training(_Model):
    epochs: int
    batch_size: int
    lr: float
    freeze: str
    weights: str | None
    image_size: int
    best_epoch: int
    val_accuracy: float
    test_accuracy: float
    seconds: float
    history: list[dict[str, float]] = Field(default_factory=list)


class Accuracy(_Model):
    """Accuracy on the held-out test split, and drift from the fp32 reference."""

    split: str = "test"
    n: int
    top1: float  # percent
    top5: float
    drop_pt: float | None = None  # fp32 top1 - this top1, percentage points
    agreement: float | None = None  # top-1 agreement with fp32, percent
    max_abs_err: float | None = None  # largest |logit - fp32 logit|
    per_class: dict[str, float] | None = None


class LatencyStats(_Model):
    batch: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float  # images per second
    speedup_vs_eager: float | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class Variant(_Model):
    """One deployable form of the model: its file, how it was made, what it measures."""

    name: str
    file: str
    sha256: str
    precision: str  # fp32 | fp16 | int8 | mixed
    runtime: str  # onnxruntime | tensorrt | torch-tensorrt | torch
    made_by: str  # one line: what produced it
    recipe: dict[str, Any] = Field(default_factory=dict)  # the config it was made with
    validation: dict[str, Any] | None = None
    accuracy: Accuracy | None = None
    latency: dict[str, LatencyStats] = Field(default_factory=dict)  # by batch size
    notes: list[str] = Field(default_factory=list)


class ModelCard(_Model):
    schema_version: int = SCHEMA_VERSION
    name: str  # zoo architecture
    num_classes: int
    labels: list[str]
    preprocessing: Preprocessing
    input_name: str = "input"
    output_name: str = "logits"
    weights: str | None = None  # where the starting weights came from
    data: DataSpec | None = None
    training: Training | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    variants: dict[str, Variant] = Field(default_factory=dict)
    selected: str | None = None
    # the PyTorch eager model timed in the same `bench` run as the variants, by batch size
    eager_latency: dict[str, LatencyStats] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    def essentials(self) -> dict[str, Any]:
        """What a lone model file carries to stay self-describing (ONNX metadata_props)."""
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "num_classes": self.num_classes,
            "labels": self.labels,
            "preprocessing": self.preprocessing.to_dict(),
            "input_name": self.input_name,
            "output_name": self.output_name,
            "input_shape": ["N", 3, self.input_size, self.input_size],
            "source_sha256": self.checkpoint_sha256,
        }

    def variant(self, name: str) -> Variant:
        if name == "selected":
            if not self.selected:
                raise ArtifactError(f"{self.name}: no variant is selected yet; run `zoodeploy build` "
                                    "or name a variant")
            name = self.selected
        if name not in self.variants:
            have = ", ".join(self.variants) or "none"
            raise ArtifactError(f"{self.name}: no variant {name!r} (have: {have}); make it with "
                                "`zoodeploy export` / `zoodeploy optimize`")
        return self.variants[name]


def card_path(artifact: str | Path) -> Path:
    return Path(artifact) / CARD_FILE


def load_card(artifact: str | Path) -> ModelCard:
    """Read `ARTIFACT/card.json`, with a one-line error when it is missing or malformed."""
    path = card_path(artifact)
    if not Path(artifact).is_dir():
        raise ArtifactError(f"{artifact} is not an artifact directory; make one with `zoodeploy train`")
    try:
        return ModelCard.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found; {artifact} is not an artifact made by "
                            "`zoodeploy train`") from None
    except ValidationError as e:
        raise ArtifactError(f"{path} is not a valid model card ({e.error_count()} errors, first: "
                            f"{e.errors()[0]['loc']}: {e.errors()[0]['msg']})") from None


def save_card(artifact: str | Path, card: ModelCard) -> Path:
    return write_json(card_path(artifact), json.loads(card.model_dump_json()))


def add_variant(artifact: str | Path, variant: Variant) -> ModelCard:
    """Record (or replace) a variant in the artifact's card; returns the updated card."""
    card = load_card(artifact)
    card.variants[variant.name] = variant
    save_card(artifact, card)
    return card


def make_variant(artifact: str | Path, name: str, file: str, **fields: Any) -> Variant:
    """A Variant for a file already written into the artifact directory (hashes it)."""
    return Variant(name=name, file=file, sha256=sha256_file(Path(artifact) / file), **fields)


def variant_path(artifact: str | Path, variant: Variant) -> Path:
    """The variant's file, checked against the sha256 recorded in the card."""
    path = Path(artifact) / variant.file
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; rebuild variant {variant.name!r}")
    if sha256_file(path) != variant.sha256:
        raise ArtifactError(f"{path} does not match the sha256 in the card; it was modified "
                            f"after variant {variant.name!r} was made — rebuild it")
    return path


def versions() -> dict[str, str]:
    """Versions of the libraries that made an artifact (for provenance)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for pkg in ("zoodeploy", "torch", "torchvision", "onnx", "onnxruntime", "onnxslim"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def provenance() -> dict[str, Any]:
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), "machine": platform.machine(), "versions": versions()}
