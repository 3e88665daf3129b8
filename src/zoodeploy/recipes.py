"""How each kind of variant was made: one typed recipe model per kind, in one registry.

A recipe is the configuration a pass (or the exporter) ran with, saved next to the artifact
so the variant can be remade and compared. It is data only (pydantic, no onnx/torch), so a
card loads wherever serving runs. A new pass adds its recipe class here with `@recipe_kind`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from zoodeploy.registry import Registry


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Recipe(_Model):
    """Base of every recipe; `kind` says which model the rest of the fields follow.

    The optimization orchestrator stamps the last three on every variant a pass makes: which pass
    made it, and the variant it was made from with that variant's sha256 when it was read, so a
    variant whose source changed since is known to be stale (`zoodeploy.artifact.stale_reason`).
    """

    kind: str
    made_by_pass: str | None = None  # the `--passes` name that made it
    source_variant: str | None = None  # the variant it was made from
    source_sha256: str | None = None  # that variant's sha256 when it was read


RECIPES: Registry[type[Recipe]] = Registry("recipe kind")


def recipe_kind(cls: type[Recipe]) -> type[Recipe]:
    """Register a recipe class under the default of its `kind` field."""
    return RECIPES.add(cls.model_fields["kind"].default, cls)


def parse_recipe(data: Any) -> Recipe:
    """A recipe of the registered kind that `data["kind"]` names."""
    if isinstance(data, Recipe):
        return data
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError(f"a recipe needs a 'kind' (one of {', '.join(RECIPES)}), got {data!r:.80}")
    return RECIPES.get(data["kind"]).model_validate(data)


@recipe_kind
class ExportRecipe(Recipe):
    """PyTorch -> ONNX (torch.onnx dynamo exporter), or the torch.export program beside it."""

    kind: Literal["export"] = "export"
    opset: int
    batch: int | Literal["dynamic"]
    input_size: int | None = None
    format: str = "onnx"
    validate_batches: list[int] = [1, 8]
    samples: int = 16
    exporter: str = ""


@recipe_kind
class CopyRecipe(Recipe):
    """A lone ONNX model taken in as the artifact's fp32 variant."""

    kind: Literal["copy"] = "copy"
    source: str  # the path it was copied from


@recipe_kind
class FuseRecipe(Recipe):
    kind: Literal["fuse"] = "fuse"
    onnxslim: bool = True
    ort_level: str  # ORT_ENABLE_BASIC | ORT_ENABLE_EXTENDED
    onnxruntime: str


class ControlStep(_Model):
    kept_in_float: int
    val_top1: float
    val_drop_pt: float


class RankedNode(_Model):
    node: str
    op: str
    output_sqnr_db: float
    gain_db: float  # SQNR gained by keeping this node in float


class AccuracyControl(_Model):
    """What the accuracy-control search did: nodes ranked by quantization error, kept in float
    until the drop on the validation split met the budget (or the search stopped). The search
    (`optimize.accuracy_control.control`) fills it in as it goes; the int8 recipe keeps it."""

    max_drop_pt: float
    split: str
    n: int
    fp32_top1: float
    candidates: int
    steps: list[ControlStep] = []
    ranking: list[RankedNode] = []  # most harmful first
    nodes_kept_in_float: list[str] = []
    val_drop_pt: float = 0.0
    met: bool = False
    stopped: str = ""
    measure: str = "top-1"  # "top-1 agreement with fp32" on a split without labels


@recipe_kind
class QuantRecipe(Recipe):
    """Static QDQ quantization with ONNX Runtime (onnxruntime.quantization.quantize_static)."""

    kind: Literal["int8"] = "int8"
    source: str  # the file quantized (fused.onnx or fp32.onnx)
    format: str = "QDQ"
    scheme: str
    scheme_reason: str
    activation_type: str
    weight_type: str
    reduce_range: bool
    per_channel: bool
    symmetric_activations: bool
    calibration: str
    calib_size: int
    calib_data: str
    shared_concat_ranges: int = 0
    isa: dict[str, Any] = {}  # the CPU features the scheme was chosen for (optimize.isa.Isa)
    target_isa: str | None = None  # the ISA quantized for, when not the build host's
    onnxruntime: str
    nodes_to_exclude: list[str] = []
    max_drop_pt: float | None = None  # the accuracy-control budget, when it ran
    control: AccuracyControl | None = None


@recipe_kind
class Fp16Recipe(Recipe):
    kind: Literal["fp16"] = "fp16"
    keep_io_types: bool = True
    ort_level: str = "ORT_ENABLE_BASIC"
    for_gpu: bool = True  # made for GPU targets: on CPU ONNX Runtime wraps fp16 ops in casts
    onnxruntime: str


class EpPartitions(_Model):
    suitability: str
    partitions: int
    supported_nodes: int
    nodes: int
    largest_partitions: list[int] = []
    unsupported_ops: list[str] = []
    unsupported_due_to_dynamic_shape: int = 0
    with_fixed_shapes: EpPartitions | None = None


class MobileUsability(_Model):
    """NNAPI / CoreML partitioning, as onnxruntime's mobile usability checker reports it."""

    dynamic_inputs: list[str] = []
    eps: dict[str, EpPartitions] = {}
    log: list[str] = []


@recipe_kind
class OrtFormatRecipe(Recipe):
    kind: Literal["ort-format"] = "ort-format"
    source: str  # the variant converted
    optimization_style: str = "Fixed"
    target_platform: str | None = None  # amd64 | arm: what the fixed optimizations were made for
    required_operators_config: str
    required_operators_config_sha256: str
    required_operators: list[str] = []
    mobile_usability: MobileUsability | None = None
    onnxruntime: str


@recipe_kind
class OpenVinoRecipe(Recipe):
    """An ONNX variant run by OpenVINO's CPU plugin, with every setting that changes its figures
    stated (never OpenVINO's silent defaults: f32 means f32)."""

    kind: Literal["openvino"] = "openvino"
    source: str  # the ONNX variant whose file it runs
    inference_precision: str  # f32 | bf16 (OpenVINO's INFERENCE_PRECISION_HINT)
    performance_hint: str = "LATENCY"  # LATENCY | THROUGHPUT
    num_streams: int | None = None
    openvino: str  # version


class BatchProfile(_Model):
    """TensorRT optimization profile of the input: min / opt / max shapes."""

    min: list[int]
    opt: list[int]
    max: list[int]


class EngineTarget(_Model):
    """The GPU model and TensorRT version an engine was built for: the only place it runs
    (`runtime.gpu.check_engine_target` refuses any other)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tensorrt: str
    gpu: str
    compute_capability: str  # "9.0"

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt} on {self.gpu} (sm_{self.compute_capability.replace('.', '')})"


class TimingCache(_Model):
    path: str
    bytes_before: int = 0
    bytes_after: int = 0


@recipe_kind
class TensorRTRecipe(Recipe):
    kind: Literal["tensorrt"] = "tensorrt"
    backend: str = "tensorrt"
    source: str
    source_sha256: str
    strongly_typed: bool
    flags: list[str]
    tf32: bool
    profile: BatchProfile
    workspace_gb: float
    target: EngineTarget
    build_seconds: float | None = None
    input: str | None = None
    timing_cache: TimingCache | None = None


@recipe_kind
class TorchTensorRTRecipe(Recipe):
    kind: Literal["torch-tensorrt"] = "torch-tensorrt"
    backend: str = "torch-tensorrt"
    source: str
    source_sha256: str
    profile: BatchProfile
    workspace_gb: float
    timing_cache: str
    torch_tensorrt: str
    target: EngineTarget


def migrate_v1_recipe(name: str, runtime: str, made_by: str, old: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 free-form recipe as the typed recipe of its kind (unknown keys dropped)."""
    if runtime in ("tensorrt", "torch-tensorrt"):
        kind = runtime
    elif "opset" in old:
        kind = "export"
    elif "scheme" in old:
        kind = "int8"
    elif "optimization_style" in old:
        kind = "ort-format"
    elif "keep_io_types" in old:
        kind = "fp16"
    elif "onnxslim" in old:
        kind = "fuse"
    else:
        kind = "copy"
    fields = RECIPES.get(kind).model_fields
    new = {k: v for k, v in old.items() if k in fields}
    if kind == "fp16":
        new.pop("target", None)
    if kind == "copy":
        new.setdefault("source", made_by.rpartition(" ")[2] or name)
    return {**new, "kind": kind}
