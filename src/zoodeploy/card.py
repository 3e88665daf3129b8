"""The model card (`card.json`): the one record every pipeline stage reads and extends."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from zoodeploy.errors import ArtifactError
from zoodeploy.fileio import write_json
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import Recipe, parse_recipe

CARD_FILE = "card.json"
CHECKPOINT_FILE = "checkpoint.pt"
CARD_LOCK = ".card.lock"  # the lock every card update takes (kept: removing it would race)
ONNX_METADATA_KEY = "zoodeploy.card"
SCHEMA_VERSION = 3  # 1: free-form recipe / validation / settings dicts; 2: square preprocessing
# (`input_size`) without channels, scale, layout or dtype (both migrated on read: card_migrate.py)


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
    labelled: bool = True  # False: a folder of images without classes (every label -1)
    skipped: int = 0  # unreadable images left out (counted, never silently)
    class_to_label: dict[str, int] | None = None  # class folder -> model label index (matched by name)
    # how the folder's top-level folders met the model's labels, e.g. "4 of 4 folders match the model's
    # labels" or "0 of 2 folders match the model's labels: read as unlabelled images"
    labels_match: str | None = None


class SourceSpec(_Model):
    """Where a model that is not trained here came from (zoodeploy.models.sources), enough to
    rebuild its nn.Module: the kind, what the user named, the weights file and their hashes."""

    kind: str  # zoo | torchvision | callable | exported-program | onnx
    ref: str  # the name, `file.py:function` / `module:function`, or the file as given
    weights: str | None = None  # the --weights file the module was loaded with
    weights_sha256: str | None = None
    file_sha256: str | None = None  # for a .pt2 / .onnx source: the file's own hash


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


class Precision(StrEnum):  # StrEnum: str() and f-strings give the value
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"
    mixed = "mixed"  # int8 with some nodes kept in float (accuracy control)


class Runtime(StrEnum):
    """What runs a variant's file; each has a runner in zoodeploy.runtime's registry."""

    onnxruntime = "onnxruntime"
    openvino = "openvino"
    torch = "torch"  # the PyTorch module itself (the eager baseline)
    torch_export = "torch-export"  # a saved torch.export program
    tensorrt = "tensorrt"
    torch_tensorrt = "torch-tensorrt"


class Accuracy(_Model):
    """Accuracy on held-out images, and drift from the fp32 reference.

    `kind` says what the figures are: "labelled" (top-1 / top-5 against the images' labels) or
    "agreement" (no usable labels: how far the variant strays from fp32 on the same images, and
    `drop_pt` is the agreement drop, 100 - agreement). Every budget reads `drop_pt`.
    """

    split: str = "test"
    n: int
    kind: Literal["labelled", "agreement"] = "labelled"
    top1: float | None = None  # percent, against the labels (None without labels)
    top5: float | None = None
    drop_pt: float | None = None  # labelled: fp32 top1 - this top1; agreement: 100 - agreement (points)
    agreement: float | None = None  # top-1 agreement with fp32, percent
    top5_containment: float | None = None  # fp32's top-1 class among this variant's top 5, percent
    max_abs_err: float | None = None  # largest |logit - fp32 logit|
    mean_abs_err: float | None = None
    per_class: dict[str, float] | None = None

    @property
    def score(self) -> float:
        """The figure a budget is measured on: top-1 with labels, agreement without."""
        return self.top1 if self.kind == "labelled" else self.agreement

    @property
    def what(self) -> str:
        return "top-1" if self.kind == "labelled" else "top-1 agreement with fp32 (no labels)"

    def change(self) -> str:
        """The drop as the one signed change every table and line prints: 0.28 pt lost -> `-0.28`."""
        return "-" if self.drop_pt is None else f"{0.0 - self.drop_pt:+.2f}"

    def summary(self) -> str:
        """`97.21% top-1` or `99.44% top-1 agreement with fp32 (no labels)`."""
        return f"{self.score:.2f}% {self.what}"


class Comparison(_Model):
    """Measured difference between a candidate's logits and a reference's on the same inputs."""

    batch: int
    samples: int
    max_abs_err: float
    max_rel_err: float  # max over samples of (max |error|) / (max |reference logit|)
    top1_agreement: float
    top5_agreement: float
    logit_scale: float = 0.0  # largest |reference logit|: what the errors are relative to


class ToleranceSpec(_Model):
    atol: float
    rtol: float
    min_top1_agreement: float
    min_top5_agreement: float


class Validation(_Model):
    """How a variant was checked when it was made: against what, on what, within what."""

    reference: str  # "PyTorch" or the reference file (fp32.onnx)
    samples: str = ""  # where the inputs came from
    runtime: str | None = None  # what ran the candidate
    tolerance: ToleranceSpec | None = None  # None: measured only, not gated
    comparisons: list[Comparison] = Field(default_factory=list)
    checks: list[str] = Field(default_factory=list)  # other checks passed (onnx.checker full_check)

    @property
    def worst_abs_err(self) -> float:
        return max((c.max_abs_err for c in self.comparisons), default=0.0)

    @property
    def min_top1_agreement(self) -> float:
        return min((c.top1_agreement for c in self.comparisons), default=100.0)


class GraphStats(_Model):
    """Op counts of a variant's graph (and of the graph it was made from)."""

    nodes: int
    op_counts: dict[str, int]
    nodes_before: int | None = None
    op_counts_before: dict[str, int] | None = None


class Speed(_Model):
    """Batch latency against a reference variant, measured in the same run."""

    reference: str
    batch: int
    p50_ms: float
    reference_p50_ms: float
    speedup: float
    threads: int | None = None


class BenchRecipe(_Model):
    """The stopping rule a latency was measured with (bench.latency.BenchConfig)."""

    warmup: int
    window: int
    window_seconds: float
    settle_seconds: float
    windows: int
    stability: float
    min_runs: int
    max_runs: int
    max_seconds: float


class RunSettings(_Model):
    """What a latency figure was measured with: the runtime's settings and the timing run's."""

    runtime: str
    version: str | None = None
    device: str | None = None
    mode: str | None = None
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    providers: list[str] | None = None
    provider_options: dict[str, dict[str, str]] | None = None
    graph_optimization: str | None = None
    spinning: bool | None = None
    precision: str | None = None
    flags: list[str] | None = None
    tensorrt: str | None = None
    batch_range: list[int] | None = None
    io: str | None = None
    config: dict[str, str] = Field(default_factory=dict)  # a runtime's own knobs, as it reports them
    # the timing run
    stable: bool | None = None
    windows: int | None = None
    measure_seconds: float | None = None
    interleaved_with: list[str] = Field(default_factory=list)
    bench: BenchRecipe | None = None
    run_id: str | None = None
    input: str | None = None  # what was timed: "8 real images from the test split"
    host: str | None = None
    process_peak_rss_mb: float | None = None


class LatencyStats(_Model):
    batch: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float  # images per second
    speedup_vs_eager: float | None = None
    settings: RunSettings | None = None


class ThroughputStats(_Model):
    """The most images/s a variant reached on this machine (`bench --throughput`), and how: `streams`
    requests of `batch` images in flight at once (OpenVINO streams with its THROUGHPUT hint; for other
    runtimes that many sessions on that many Python threads), `threads` intra-op threads in all.
    Images/s is total images over wall time, blocks timed after a settle pause like latency."""

    throughput: float  # images per second, the same name as LatencyStats'
    batch: int  # images per request
    streams: int  # requests in flight at once
    threads: int  # intra-op threads in all (each stream gets threads // streams)
    runs: int  # timed calls, each of batch * streams images
    tried: dict[str, float] = Field(default_factory=dict)  # "b8 x2" -> images/s: every setting measured
    settings: RunSettings | None = None  # runtime, its config in effect, stable, run id, host

    @property
    def images(self) -> int:
        """Images per timed call: one batch per request in flight."""
        return self.batch * self.streams


def settled(stats: LatencyStats | ThroughputStats) -> bool:
    """Whether a timing may be chosen on speed: not marked unstable (a row from before the stability
    check, without settings, counts as settled)."""
    return not (stats.settings and stats.settings.stable is False)


class Variant(_Model):
    """One deployable form of the model: its file, how it was made, what it measures."""

    name: str
    file: str
    sha256: str
    precision: Precision
    runtime: Runtime
    made_by: str  # one line: what produced it
    recipe: SerializeAsAny[Recipe]  # the config it was made with, typed by kind
    validation: Validation | None = None
    graph: GraphStats | None = None
    seconds: float | None = None  # how long making it took
    accuracy: Accuracy | None = None
    accuracy_on: dict[str, Accuracy] = Field(default_factory=dict)  # measured on another ISA's device
    latency: dict[str, LatencyStats] = Field(default_factory=dict)  # by batch size
    throughput: ThroughputStats | None = None  # the best images/s found (`bench --throughput`)
    speed: Speed | None = None
    notes: list[str] = Field(default_factory=list)

    @field_validator("recipe", mode="before")
    @classmethod
    def _typed_recipe(cls, value: Any) -> Recipe:
        return parse_recipe(value)

    @property
    def settled_throughput(self) -> ThroughputStats | None:
        """`bench --throughput`'s best when its timing settled: what predict and the server may run by."""
        return self.throughput if self.throughput is not None and settled(self.throughput) else None


class BuildRecord(_Model):
    """What `zoodeploy build` was asked for and the rule it selected by."""

    target: str
    max_drop: float
    select_batch: int
    batches: list[int]
    data: str | None = None
    epochs: int | None = None
    weights: str | None = None
    passes: list[str] = Field(default_factory=list)
    rule: str = "fastest p50 within max_drop of fp32 top-1"
    objective: str = "latency"  # what it selected by: latency | throughput | size (the service follows it)
    why: list[str] = Field(default_factory=list)  # what the selection left out and why, a fallback taken
    not_made: dict[str, str] = Field(default_factory=dict)  # pass -> why it was skipped or failed, one line


class ExportFailure(_Model):
    time: str
    error: str
    validation: Validation | None = None


class StoreImport(_Model):
    """Where a BentoML model-store copy of the card came from."""

    source: str  # the artifact directory
    variant: str
    variants_left_out: list[str] = Field(default_factory=list)


class Provenance(_Model):
    created: str | None = None
    host: str | None = None
    machine: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    train_config: dict[str, str | int | float | bool | None] | None = None  # as `zoodeploy train` ran
    source_onnx: str | None = None  # the lone ONNX file the artifact was made from
    card_from: str | None = None  # for it: "onnx metadata" or "graph + data"
    build: BuildRecord | None = None
    export_failure: ExportFailure | None = None
    store_import: StoreImport | None = None


class ModelCard(_Model):
    schema_version: int = SCHEMA_VERSION
    name: str  # zoo architecture
    num_classes: int
    labels: list[str]
    # where the labels came from: "--labels FILE", "zoodeploy metadata", "metadata_props['names']",
    # "torchvision weights", "class folders in sorted order (--labels folders)", "none: class_<i>"
    labels_source: str | None = None
    preprocessing: Preprocessing
    # where each preprocessing value came from: user, model input, model metadata, torchvision weights,
    # zoo entry, default (a model deployed from a source; empty for one trained here)
    preprocessing_from: dict[str, str] = Field(default_factory=dict)
    input_name: str = "input"
    output_name: str = "logits"
    weights: str | None = None  # where the starting weights came from
    source: SourceSpec | None = None  # None: a zoo architecture (cards older than sources)
    data: DataSpec | None = None
    training: Training | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    target_isa: str | None = None  # the ISA int8 variants were quantized for (None: the build host's)
    variants: dict[str, Variant] = Field(default_factory=dict)
    selected: str | None = None
    # the PyTorch eager model timed in the same `bench` run as the variants, by batch size
    eager_latency: dict[str, LatencyStats] = Field(default_factory=dict)
    provenance: Provenance = Field(default_factory=Provenance)

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("schema_version", SCHEMA_VERSION) < SCHEMA_VERSION:
            from zoodeploy.card_migrate import migrate
            return migrate(data)
        return data

    @property
    def input_size(self) -> int:
        """The side of a square input (a non-square model's card raises: use `input_shape`)."""
        return self.preprocessing.input_size

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One image's input tensor shape, (C, H, W) or (H, W, C)."""
        return self.preprocessing.input_shape

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
            "input_shape": ["N", *self.input_shape],
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
    """Write a whole card atomically. Stages that change a card that may already exist use
    `update_card`, which holds the lock and re-reads first; this is for a card being made."""
    return write_json(card_path(artifact), json.loads(card.model_dump_json()))


@contextlib.contextmanager
def card_lock(artifact: str | Path) -> Iterator[None]:
    """An exclusive lock on the artifact's card (a `.card.lock` file beside it), across processes."""
    path = Path(artifact) / CARD_LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise ArtifactError(f"cannot lock {card_path(artifact)}: {e.strerror or e}; "
                            "is the artifact directory writable?") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def update_card(artifact: str | Path) -> Iterator[ModelCard]:
    """Change the card under its lock: re-read, let the block change it, save atomically.

    Any number of zoodeploy commands on one artifact at once lose nothing: each change is made
    to the card as the previous writer left it. Keep slow work (measuring) outside the block.
    """
    with card_lock(artifact):
        card = load_card(artifact)
        yield card
        save_card(artifact, card)


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


def provenance() -> Provenance:
    return Provenance(created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), host=platform.node(),
                      machine=platform.machine(), versions=versions())
