"""Static INT8 quantization (QDQ, per-channel weights) with an ISA-aware scheme.

`quantize(artifact, QuantConfig(...), variant_name=...)` is the one call: pre-process
(`quant_pre_process`, unless the source is the `fused` model that already holds it), calibrate
once on training data, quantize, record the variant in the card (the orchestrator measures its
accuracy and drift). The `Quantizer` keeps the pre-processed model and the calibration ranges,
so accuracy control re-quantizes without re-calibrating.

The card essentials go into the model's metadata before pre-processing: ORT's optimizer and
quantize_static keep metadata_props, so the quantized file is written once, already stamped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from zoodeploy.artifact import FUSED, REFERENCE, Artifact
from zoodeploy.card import ModelCard, Precision, Variant
from zoodeploy.errors import OptimizeError, first_line
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.fileio import staging_dir
from zoodeploy.optimize.data import calibration_arrays
from zoodeploy.optimize.isa import scheme_for_target
from zoodeploy.target import Isa, TargetIsa, detect_isa, resolve_target, target_isa
from zoodeploy.optimize.record import record_model
from zoodeploy.recipes import FuseRecipe, QuantRecipe
from zoodeploy.progress import bar as progress_bar

CALIB_BATCH = 8  # images per calibration run: bounds the memory of collected activations


class Scheme(str, Enum):
    """Activation/weight integer types. `auto` picks by CPU (see optimize/isa.py)."""

    auto = "auto"
    s8s8 = "s8s8"
    u8s8 = "u8s8"
    u8s8_reduce_range = "u8s8-reduce-range"
    u8u8 = "u8u8"
    tensorrt = "tensorrt"  # symmetric S8S8 activations + weights: TensorRT's explicit quantization


class Calibration(str, Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


@dataclass(frozen=True)
class SchemeSpec:
    activation: str  # onnxruntime.quantization.QuantType member name
    weight: str
    reduce_range: bool = False
    symmetric_activations: bool = False
    keep_activations: bool = False  # keep Relu/Clip explicit (TensorRT fuses them itself)


SCHEMES: dict[Scheme, SchemeSpec] = {
    Scheme.s8s8: SchemeSpec("QInt8", "QInt8"),
    Scheme.u8s8: SchemeSpec("QUInt8", "QInt8"),
    Scheme.u8s8_reduce_range: SchemeSpec("QUInt8", "QInt8", reduce_range=True),
    Scheme.u8u8: SchemeSpec("QUInt8", "QUInt8"),
    Scheme.tensorrt: SchemeSpec("QInt8", "QInt8", symmetric_activations=True, keep_activations=True),
}


@dataclass
class QuantConfig:
    """How to quantize: scheme, calibration data and method, nodes kept in float."""

    scheme: Scheme = Scheme.auto
    calibration: Calibration = Calibration.minmax
    calib_data: str | None = None  # None: the card's own data set (its train split)
    calib_size: int = 128
    per_channel: bool = True
    nodes_to_exclude: tuple[str, ...] = ()
    progress: bool = False
    isa: Isa = field(default_factory=detect_isa)
    target_isa: TargetIsa = TargetIsa.host  # the CPU the model will run on (optimize/isa.py)

    def __post_init__(self):
        self.target_isa = target_isa(self.target_isa)
        self.scheme = _member(Scheme, self.scheme, "--scheme")
        self.calibration = _member(Calibration, self.calibration, "--calibration")
        if self.calib_size < 1:
            raise OptimizeError(f"--calib-size must be at least 1, got {self.calib_size}")
        self.nodes_to_exclude = tuple(self.nodes_to_exclude)

    def resolved(self) -> tuple[Scheme, str]:
        """The concrete scheme, and why it was chosen."""
        if self.scheme is not Scheme.auto:
            return self.scheme, "set by --scheme"
        name, why = scheme_for_target(self.target_isa, self.isa)
        return Scheme(name), f"auto: {why}"


def _member(enum: type[Enum], value, option: str):
    try:
        return enum(value)
    except ValueError:
        raise OptimizeError(f"unknown {option} {value!r}; use one of {', '.join(m.value for m in enum)}") from None


class CalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over preprocessed training images."""

    def __init__(self, x: np.ndarray, input_name: str, batch: int = CALIB_BATCH, progress: bool = False):
        self.batches = [x[i:i + batch] for i in range(0, len(x), batch)]
        self.input_name = input_name
        self.start, self.end = 0, len(self.batches)
        self.pos = 0
        self.bar = progress_bar(total=len(self.batches), desc="calibrate", unit="batch", disable=not progress,
                        leave=False)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= self.end:
            return None
        self.pos += 1
        self.bar.update(1)
        return {self.input_name: self.batches[self.pos - 1]}

    def set_range(self, start_index: int, end_index: int) -> None:
        """ORT's strided calibration: feed batches [start, end) next (one histogram merge each)."""
        self.start, self.end = start_index, min(end_index, len(self.batches))
        self.pos = self.start

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while (item := self.get_next()) is not None:
            yield item


@contextlib.contextmanager
def quiet_ort_quantization() -> Iterator[None]:
    """ORT's quantizer logs pre-processing advice and prints progress to stdout; keep both off
    stdout (it carries `--json` output) and out of the user's way."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(_Sink()):
            yield
    finally:
        root.setLevel(level)


class _Sink:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def keep_in_float(qdq: onnx.ModelProto, float_model: onnx.ModelProto, names: set[str]) -> None:
    """Give the nodes `names` of a QDQ model their float inputs (tensors and weights) back.

    ORT's `nodes_to_exclude` leaves an excluded node's weights in float, but a tensor it shares
    with a quantized consumer (a residual branch, a concat) reaches it through that consumer's
    Q -> DQ pair, so it still computes on quantized values. Rewired here, it reads the float
    tensor; Q/DQ nodes nothing reads any more are dropped. A tensor whose producer the quantizer
    removed is not taken back: ORT folds a Relu or Clip after a quantized op into the Q range and
    gives the op the activation's output name, so that name then holds the unclipped values (a
    MobileNetV2 kept its depthwise convs in float this way and fell from 93% to 40% top-1); the
    Q -> DQ pair is what clips them.
    """
    float_nodes = {n.name: n for n in float_model.graph.node}
    float_producer = {o: n.name for n in float_model.graph.node for o in n.output}
    qdq_producer = {o: n.name for n in qdq.graph.node for o in n.output}
    taken = {i.name for i in qdq.graph.initializer} | set(qdq_producer)
    needed: set[str] = set()
    for node in qdq.graph.node:
        original = float_nodes.get(node.name)
        if node.name not in names or original is None or len(original.input) != len(node.input):
            continue
        node.input[:] = [t if qdq_producer.get(t) == float_producer.get(t) else now
                         for now, t in zip(node.input, original.input)]
        needed.update(node.input)
    qdq.graph.initializer.extend(i for i in float_model.graph.initializer if i.name in needed and i.name not in taken)
    _drop_dead_nodes(qdq)


def _drop_dead_nodes(model: onnx.ModelProto) -> None:
    outputs = {o.name for o in model.graph.output}
    while True:
        read = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    read = {i for n in model.graph.node for i in n.input}
    unused = [i for i in model.graph.initializer if i.name not in read]
    for i in unused:
        model.graph.initializer.remove(i)


def concat_groups(model: onnx.ModelProto) -> list[list[str]]:
    """Tensors joined by Concat nodes (inputs and output), as connected groups: a tensor that
    feeds several concats (DenseNet's features) ties their groups together."""
    parent: dict[str, str] = {}

    def root(t: str) -> str:
        while parent.setdefault(t, t) != t:
            t = parent[t]
        return t
    for node in model.graph.node:
        if node.op_type == "Concat":
            for t in node.input:
                parent[root(t)] = root(node.output[0])
    groups: dict[str, list[str]] = {}
    for t in parent:
        groups.setdefault(root(t), []).append(t)
    return list(groups.values())


def share_ranges(ranges, groups: list[list[str]]) -> None:
    """Give every tensor of a group the group's widest calibrated range (in ORT's `TensorsData`).

    With equal scales and zero points on its inputs and output, ONNX Runtime's INT8 Concat copies
    bytes instead of requantizing every input: measured here, SqueezeNet 1.1 at 224 px int8
    2.03 -> 1.66 ms at batch 1 (fused fp32: 3.05 ms). The narrower tensors of a group lose a little
    resolution; accuracy control measures what that costs.
    """
    for group in groups:
        names = [t for t in group if t in ranges.data]
        if len(names) < 2:
            continue
        lo = min(float(np.min(ranges.data[t].range_value[0])) for t in names)
        hi = max(float(np.max(ranges.data[t].range_value[1])) for t in names)
        for t in names:
            ranges.data[t] = type(ranges.data[t])(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))


class Quantizer:
    """Pre-processed model + cached calibration ranges: quantize again with other exclusions cheaply."""

    # the op types given Q/DQ: None is every type ORT's QDQ registry knows (Conv, MatMul, Add,
    # Concat, pooling, ...); benchmarks/ort_int8_options.py measures narrower placements
    op_types: Sequence[str] | None = None

    def __init__(self, source: Path, cfg: QuantConfig, calib: np.ndarray, input_name: str,
                 optimized: bool = False, stamp: Callable[[onnx.ModelProto], object] | None = None):
        from onnxruntime.quantization import QuantType
        self.cfg = cfg
        self.scheme, self.scheme_reason = cfg.resolved()
        self.spec = SCHEMES[self.scheme]
        self.activation_type = QuantType[self.spec.activation]
        self.weight_type = QuantType[self.spec.weight]
        self.calib = calib
        self.input_name = input_name
        self.source = source
        # named with this pid: a killed run's folder is removed by the next run (fileio.staging_dir)
        self._stage = contextlib.ExitStack()
        self.dir = self._stage.enter_context(staging_dir("zoodeploy-quant"))
        self.prepared = self.dir / "prepared.onnx"
        self.cache = self.dir / "calibration.json"
        # `stamp` edits the source model's metadata, which pre-processing and quantize_static keep:
        # the quantized file needs no second write to stamp it
        self.stamped = stamp is not None
        try:
            self._prepare(source, optimized, stamp)
        except BaseException:
            self.close()
            raise
        self.concat_groups = concat_groups(onnx.load(str(self.prepared), load_external_data=False))

    def _prepare(self, source: Path, optimized: bool, stamp: Callable[[onnx.ModelProto], object] | None) -> None:
        """quant_pre_process: ORT's BASIC optimizations and ONNX shape inference. A source that
        holds the BASIC optimizations already (`fused`) is used as it is: quantize_static and its
        calibrator each run ONNX shape inference themselves, so pre-processing would only load,
        infer and save the model twice more (VGG-16: 15 s of 72 s). Symbolic shape inference is
        for transformers' symbolic dims; these CNNs have static shapes but for the batch.

        The prepared model keeps its weights beside the graph (ONNX external data): the shape
        inference quantize_static and its calibrator run through files then parses, infers and
        writes the graph alone, not every weight twice (VGG-11: 9.9 -> 0.2 s on one core)."""
        data = self.prepared.name + ".data"  # the weights, beside the graph
        if optimized:
            model = onnx.load(str(source))
            if stamp is not None:
                stamp(model)
            onnx.save(model, str(self.prepared), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=data, size_threshold=1024)
            return
        from onnxruntime.quantization.shape_inference import quant_pre_process
        try:
            with quiet_ort_quantization():
                quant_pre_process(str(source), str(self.prepared), skip_symbolic_shape=True, save_as_external_data=True,
                                  all_tensors_to_one_file=True, external_data_location=data,
                                  external_data_size_threshold=1024)
        except Exception as e:
            raise OptimizeError(f"quant_pre_process failed on {source}: {first_line(e)}") from None
        if not self.prepared.is_file():
            raise OptimizeError(f"quant_pre_process wrote nothing for {source}; is it a valid ONNX model?")
        if stamp is not None:  # the graph alone is rewritten: its weights stay in the .data file beside it
            model = onnx.load(str(self.prepared), load_external_data=False)
            stamp(model)
            onnx.save(model, str(self.prepared))

    def write(self, out: Path, nodes_to_exclude: Sequence[str] = ()) -> None:
        """Quantize the pre-processed model into `out` (calibrating on the first call only)."""
        if not self.cache.exists():
            self._calibrate()
        if not nodes_to_exclude:
            self._quantize(out, nodes_to_exclude)
            return
        quantized = self.dir / "quantized.onnx"  # rewired below: `out` is written once, complete
        self._quantize(quantized, nodes_to_exclude)
        model = onnx.load(str(quantized))
        keep_in_float(model, onnx.load(str(self.prepared)), set(nodes_to_exclude))
        onnx.save(model, str(out))

    def _calibrate(self) -> None:
        """Activation ranges, collected once with ORT's own calibrator over the op types
        quantize_static quantizes, one batch per collect (bounded memory; histograms merge);
        the tensors a Concat joins share one range. Every quantization then reads the cache."""
        from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
        from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
        reader = CalibrationReader(self.calib, self.input_name, progress=self.cfg.progress)
        try:
            with quiet_ort_quantization():
                calibrator = create_calibrator(self.prepared, sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
                                               augmented_model_path=str(self.dir / "augmented.onnx"),
                                               calibrate_method=self.method)
                for start in range(len(reader)):
                    reader.set_range(start, start + 1)
                    calibrator.collect_data(reader)
                ranges = calibrator.compute_data()
                del calibrator  # its session holds the augmented model open
        except Exception as e:
            raise OptimizeError(f"ONNX Runtime calibration failed ({self.cfg.calibration.value}): "
                                f"{first_line(e)}") from None
        finally:
            reader.bar.close()
        share_ranges(ranges, self.concat_groups)
        save_tensors_data(ranges, self.cache)

    @property
    def method(self):
        from onnxruntime.quantization import CalibrationMethod
        return {Calibration.minmax: CalibrationMethod.MinMax, Calibration.entropy: CalibrationMethod.Entropy,
                Calibration.percentile: CalibrationMethod.Percentile}[self.cfg.calibration]

    def _quantize(self, out: Path, nodes_to_exclude: Sequence[str]) -> None:
        from onnxruntime.quantization import QuantFormat, quantize_static
        try:
            with quiet_ort_quantization():
                quantize_static(str(self.prepared), str(out), None, quant_format=QuantFormat.QDQ,
                                per_channel=self.cfg.per_channel, reduce_range=self.spec.reduce_range,
                                activation_type=self.activation_type, weight_type=self.weight_type,
                                nodes_to_exclude=list(nodes_to_exclude), calibrate_method=self.method,
                                op_types_to_quantize=list(self.op_types) if self.op_types else None,
                                extra_options=self.extra_options(), calibration_cache_path=str(self.cache))
        except Exception as e:
            raise OptimizeError(f"ONNX Runtime quantization failed ({self.scheme.value}, "
                                f"{self.cfg.calibration.value}): {first_line(e)}") from None

    def extra_options(self) -> dict[str, Any]:
        return {
            "ActivationSymmetric": self.spec.symmetric_activations,
            "WeightSymmetric": True,
            "QDQKeepRemovableActivations": self.spec.keep_activations,
        }

    def recipe(self, calib_data: str, **more: Any) -> QuantRecipe:
        return QuantRecipe(source=self.source.name, scheme=self.scheme.value, scheme_reason=self.scheme_reason,
                           activation_type=self.spec.activation, weight_type=self.spec.weight,
                           reduce_range=self.spec.reduce_range, per_channel=self.cfg.per_channel,
                           symmetric_activations=self.spec.symmetric_activations,
                           calibration=self.cfg.calibration.value, calib_size=len(self.calib), calib_data=calib_data,
                           shared_concat_ranges=len(self.concat_groups), isa=self.cfg.isa.to_dict(),
                           target_isa=resolve_target(self.cfg.target_isa, self.cfg.isa).value,
                           onnxruntime=ort.__version__, **more)

    def made_by(self, calib_desc: str) -> str:
        return (f"onnxruntime.quantization.quantize_static (QDQ, {self.scheme.value}, "
                f"{'per-channel' if self.cfg.per_channel else 'per-tensor'} weights, "
                f"{self.cfg.calibration.value} calibration on {calib_desc})")

    def close(self) -> None:
        self._stage.close()

    def __enter__(self) -> Quantizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def quantization_source(artifact: Artifact | str | Path, card: ModelCard) -> tuple[Path, bool]:
    """The model to quantize: `fused` when it holds ORT's BASIC optimizations (what
    quant_pre_process would do again), else fp32; and whether it is already optimized."""
    art = Artifact.of(artifact)
    fused = card.variants.get(FUSED)
    if fused is not None and isinstance(fused.recipe, FuseRecipe) and fused.recipe.ort_level == "ORT_ENABLE_BASIC":
        return art.file(fused), True
    return art.file(card.variant(REFERENCE)), False


def open_quantizer(artifact: Artifact | str | Path, card: ModelCard, cfg: QuantConfig,
                   variant: str | None = None) -> tuple[Quantizer, str]:
    """A Quantizer for the artifact's model and its calibration data (and where it came from);
    with `variant`, what it writes carries the card essentials for that variant name."""
    art = Artifact.of(artifact)
    source, optimized = quantization_source(art, card)
    own_splits = art.splits() if cfg.calib_data is None and card.data is not None else None
    calib, desc = calibration_arrays(card, cfg.calib_data, cfg.calib_size, own_splits)
    stamp = None if variant is None else (lambda m: set_card_metadata(m, card, variant=variant))
    return Quantizer(source, cfg, calib, card.input_name, optimized, stamp), desc


def quantize(artifact: Artifact | str | Path, cfg: QuantConfig | None = None, variant_name: str = "int8") -> Variant:
    """Quantize the artifact's fp32 model and record it (the orchestrator measures its accuracy).

    `quantize(artifact, QuantConfig(scheme=Scheme.tensorrt), variant_name="int8-trt-qdq")` gives
    the symmetric S8S8 QDQ model TensorRT builds explicit-quantization engines from.
    """
    cfg = cfg or QuantConfig()
    art = Artifact.of(artifact)
    quantizer, desc = open_quantizer(art, art.card, cfg, variant_name)
    with quantizer:
        variant = record_model(art, variant_name, lambda out: quantizer.write(out, cfg.nodes_to_exclude),
                               stamped=quantizer.stamped,
                               precision=Precision.mixed if cfg.nodes_to_exclude else Precision.int8,
                               made_by=quantizer.made_by(desc),
                               recipe=quantizer.recipe(desc, nodes_to_exclude=list(cfg.nodes_to_exclude)))
    record_target_isa(art, cfg)
    return variant


def record_target_isa(artifact: Artifact | str | Path, cfg: QuantConfig) -> None:
    """The card's `target_isa`: the CPU class int8 was quantized for (`host` named as its class),
    beside the build host's own ISA in the variant's recipe."""
    with Artifact.of(artifact).update() as card:
        card.target_isa = resolve_target(cfg.target_isa, cfg.isa).value
