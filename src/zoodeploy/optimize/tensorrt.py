"""ONNX -> serialized TensorRT engine (`trt-fp32`, `trt-fp16`, `trt-int8`), verified before it lands.

`optimize.compile.compile_variant(artifact, CompileConfig)` is the entry point for both GPU backends (TensorRT
from the ONNX graph here; Torch-TensorRT from the exported program in `torch_tensorrt.py`).

Precision rules (`plan_build`), for TensorRT 10.x and strongly-typed-only releases alike:
- fp32: the fp32 graph, TF32 off (so the name is true); strongly typed where available.
- fp16: the fp16 ONNX variant when the card has one (strongly typed: the graph's types rule);
  else the fp32 graph with the FP16 builder flag (weakly typed; refused where a TensorRT
  release has no weak typing left, with how to make the fp16 graph).
- int8: only explicit quantization, a symmetric S8S8 QDQ graph made by `zoodeploy.optimize`'s
  `tensorrt` scheme (made here when missing); INT8 + FP16 flags so layers left in float run in
  fp16. Implicit calibrators are deprecated and never used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

from zoodeploy.artifact import REFERENCE, Artifact
from zoodeploy.card import ModelCard, Precision, Validation, Variant
from zoodeploy.errors import OptimizeError
from zoodeploy.export.validate import TOLERANCES, compare, validation_samples
from zoodeploy.fileio import atomic_path, write_bytes
from zoodeploy.recipes import EngineTarget, TensorRTRecipe
from zoodeploy.runtime import EAGER, RunOptions, open_runner
from zoodeploy.runtime.backends import runner_factory
from zoodeploy.runtime.gpu import ProfileShapes, cache_dir, current_target, import_tensorrt, profile_shapes

TRT_SCHEME = "tensorrt"  # the quantization scheme that makes TensorRT's explicit QDQ graph
QDQ_VARIANT = "int8-trt-qdq"  # the name it gets when compile makes it
QDQ_PRECISIONS = ("int8", "mixed")  # mixed: some nodes kept in float by accuracy control


class Backend(str, Enum):
    tensorrt = "tensorrt"  # TensorRT builder on the ONNX graph -> .engine
    torch_tensorrt = "torch-tensorrt"  # torch_tensorrt on the exported program -> .pt2


ENGINE_PRECISIONS = (Precision.fp32, Precision.fp16, Precision.int8)  # what the GPU backends build


@dataclass
class CompileConfig:
    backend: Backend = Backend.tensorrt
    precision: Precision = Precision.fp16
    max_batch: int = 64  # the profile accepts batches 1..max_batch
    opt_batch: int | None = None  # the batch TensorRT tunes kernels for (default min(8, max_batch))
    workspace_gb: float = 4.0  # builder scratch memory limit
    timing_cache: Path | None = None  # default: one per GPU and TensorRT version in the user cache
    source: str | None = None  # variant to build from (default: by the precision rules)
    progress: bool = True

    def __post_init__(self):
        try:
            self.backend, self.precision = Backend(self.backend), Precision(self.precision)
            if self.precision not in ENGINE_PRECISIONS:
                raise ValueError(f"{self.precision.value!r} is not an engine precision")
        except ValueError as e:
            raise OptimizeError(f"{e}; backends: tensorrt, torch-tensorrt; precisions: "
                                f"{', '.join(ENGINE_PRECISIONS)}") from None
        if self.max_batch < 1:
            raise OptimizeError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.opt_batch is not None and not 1 <= self.opt_batch <= self.max_batch:
            raise OptimizeError(f"--opt-batch must be between 1 and --max-batch ({self.max_batch}), "
                                f"got {self.opt_batch}")
        if not self.workspace_gb > 0:
            raise OptimizeError(f"--workspace must be a positive number of GB, got {self.workspace_gb}")
        if self.backend is Backend.torch_tensorrt and self.precision is Precision.int8:
            raise OptimizeError("--backend torch-tensorrt builds fp32 or fp16; for int8 use --backend tensorrt "
                                "(explicit QDQ from the optimize step's tensorrt scheme)")
        if self.timing_cache is not None:
            self.timing_cache = Path(self.timing_cache)
            if self.timing_cache.is_dir():
                raise OptimizeError(f"--timing-cache {self.timing_cache} is a directory; give a file path")

    @property
    def variant_name(self) -> str:
        prefix = "trt" if self.backend is Backend.tensorrt else "torch-trt"
        return f"{prefix}-{self.precision.value}"


@dataclass(frozen=True)
class TrtCaps:
    """What the installed TensorRT can build."""

    strongly_typed: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists
    weak_typing: bool  # BuilderFlag.FP16 / INT8 still exist (deprecated in late 10.x)

    @classmethod
    def of(cls, trt: ModuleType) -> TrtCaps:
        return cls(strongly_typed=hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
                   weak_typing=hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "INT8"))


@dataclass(frozen=True)
class BuildPlan:
    """Which graph to build from and how: the output of the precision rules."""

    precision: Precision
    source: str  # ONNX variant name
    strongly_typed: bool
    flags: tuple[str, ...] = ()  # BuilderFlag names to set
    tf32: bool = True  # left on by TensorRT unless cleared

    def describe(self) -> str:
        typing = "strongly typed" if self.strongly_typed else "weakly typed"
        flags = "+".join(self.flags) or "no precision flags"
        return f"{typing}, {flags}, TF32 {'on' if self.tf32 else 'off'}"


def tensorrt_qdq_variant(card: ModelCard) -> str | None:
    """The card's QDQ graph made with the TensorRT (symmetric S8S8) scheme, if any."""
    for name, v in card.variants.items():
        if v.precision in QDQ_PRECISIONS and v.runtime == "onnxruntime" and getattr(v.recipe, "scheme", None) == TRT_SCHEME:
            return name
    return None


def _onnx_source(card: ModelCard, name: str) -> Variant:
    v = card.variant(name)
    if v.runtime != "onnxruntime" or not v.file.endswith(".onnx"):
        raise OptimizeError(f"--source {name!r} is a {v.runtime} variant ({v.file}); TensorRT builds from "
                            "an ONNX variant (fp32, fp16 or a tensorrt-scheme int8 QDQ graph)")
    return v


def plan_build(card: ModelCard, precision: Precision, caps: TrtCaps, source: str | None = None) -> BuildPlan:
    """Apply the precision rules (see the module docstring) to what the card holds."""
    precision = Precision(precision)
    if precision is Precision.int8:
        source = source or tensorrt_qdq_variant(card)
        if source is None or _onnx_source(card, source).precision not in QDQ_PRECISIONS:
            raise OptimizeError(f"{card.name}: int8 engines need an explicit-quantization (QDQ) graph; make it "
                                f"with the {TRT_SCHEME} quantization scheme (`zoodeploy optimize`) first")
        if caps.weak_typing:
            return BuildPlan(precision, source, strongly_typed=False, flags=("INT8", "FP16"))
        return BuildPlan(precision, source, strongly_typed=True)
    if source is not None and _onnx_source(card, source).precision in QDQ_PRECISIONS:
        raise OptimizeError(f"--source {source!r} is an int8 QDQ graph; build it with --precision int8")
    if precision is Precision.fp32:
        return BuildPlan(precision, source or _onnx_source(card, REFERENCE).name,
                         strongly_typed=caps.strongly_typed, tf32=False)
    fp16_graph = source or next((n for n, v in card.variants.items()
                                 if v.precision == "fp16" and v.runtime == "onnxruntime"), None)
    if fp16_graph is not None and _onnx_source(card, fp16_graph).precision == "fp16" and caps.strongly_typed:
        return BuildPlan(precision, fp16_graph, strongly_typed=True)
    if not caps.weak_typing:
        raise OptimizeError(f"{card.name}: this TensorRT builds only strongly typed networks, so fp16 needs an "
                            "fp16 ONNX graph; make it with `zoodeploy optimize` (fp16) first")
    return BuildPlan(precision, fp16_graph or _onnx_source(card, REFERENCE).name, strongly_typed=False,
                     flags=("FP16",))


def onnx_input(path: Path) -> tuple[str, list[int | str | None]]:
    """The graph's single input: name and dims (int, or the symbolic name for a dynamic dim)."""
    import onnx
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise OptimizeError(f"{path} has {len(inputs)} inputs; zoodeploy engines take one image tensor")
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in inputs[0].type.tensor_type.shape.dim]
    return inputs[0].name, dims


def default_timing_cache(target: EngineTarget) -> Path:
    """One timing cache per GPU model and TensorRT version, shared by every model built there."""
    slug = "".join(c if c.isalnum() else "-" for c in target.gpu).strip("-").lower()
    return cache_dir("tensorrt") / f"timing-trt{target.tensorrt}-sm{target.compute_capability.replace('.', '')}-{slug}.cache"


# --- the TensorRT builder ------------------------------------------------------------------------

def _logger(trt: ModuleType) -> Any:
    """A TensorRT logger that keeps errors (for the one-line message) and prints warnings."""
    import sys

    class Log(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(" ".join(str(msg).split()))
            elif severity == trt.ILogger.Severity.WARNING:
                print(f"TensorRT: {msg}", file=sys.stderr)

    return Log()


def _progress_monitor(trt: ModuleType) -> Any:
    """Top-level builder phases as progress bars on stderr (TensorRT >= 10 reports them)."""
    from zoodeploy.progress import bar

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, Any] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:  # num_steps is -1 where TensorRT does not know it yet
                self.bars[phase_name] = bar(total=num_steps if num_steps > 0 else None,
                                             desc=f"TensorRT {phase_name}", leave=False)

        def step_complete(self, phase_name, step):
            if phase_name in self.bars:
                self.bars[phase_name].update(1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def _parse(trt: ModuleType, builder: Any, path: Path, plan: BuildPlan, log: Any) -> tuple[Any, Any]:
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)] or log.errors or ["no detail"]
        raise OptimizeError(f"TensorRT's ONNX parser rejected {path.name}: {errors[0][:300]}")
    if network.num_inputs != 1:
        raise OptimizeError(f"{path.name} has {network.num_inputs} inputs; expected one image tensor")
    return network, parser  # the parser owns weights the network refers to: keep it alive


def _builder_config(trt: ModuleType, builder: Any, input_name: str, plan: BuildPlan, profile: ProfileShapes,
                    workspace_gb: float) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if not plan.tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)
    return config


def _timing_cache(config: Any, path: Path) -> int:
    """Attach the timing cache at `path` (empty when new); returns its size in bytes."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise OptimizeError(f"timing cache {path} was made on another GPU or TensorRT version; delete it or "
                            "pass another --timing-cache")
    return len(data)


def serialize_engine(trt: ModuleType, onnx_path: Path, plan: BuildPlan, profile: ProfileShapes,
                     cfg: CompileConfig, cache_path: Path) -> tuple[bytes, dict[str, Any]]:
    """Serialized engine bytes, and what the build used (for the recipe); the timing cache at
    `cache_path` is loaded first and saved (atomically) after."""
    log = _logger(trt)
    builder = trt.Builder(log)
    network, _parser = _parse(trt, builder, onnx_path, plan, log)
    input_name = network.get_input(0).name
    config = _builder_config(trt, builder, input_name, plan, profile, cfg.workspace_gb)
    cache_before = _timing_cache(config, cache_path)
    monitor = _progress_monitor(trt) if cfg.progress and hasattr(trt, "IProgressMonitor") else None
    if monitor is not None:  # the local keeps it alive for the whole build
        config.progress_monitor = monitor
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise OptimizeError(f"TensorRT could not build {onnx_path.name} ({plan.describe()}): "
                            f"{(log.errors or ['see the TensorRT log above'])[0][:300]}")
    cache_bytes = bytes(config.get_timing_cache().serialize())
    write_bytes(cache_path, cache_bytes)
    return bytes(serialized), {"build_seconds": round(seconds, 2), "input": input_name,
                               "timing_cache": {"path": str(cache_path), "bytes_before": cache_before,
                                                "bytes_after": len(cache_bytes)}}


# --- verify, record ----------------------------------------------------------------------------------

def validate_against_eager(art: Artifact, variant: Variant, batches: tuple[int, ...]) -> Validation:
    """Run the new variant (not in the card yet) and the PyTorch checkpoint (CPU) on the same
    images, judged by its precision's tolerance; one error if off."""
    samples = validation_samples(art)
    with_variant = art.card.model_copy(update={"variants": {**art.card.variants, variant.name: variant}})
    open_candidate = runner_factory(str(variant.runtime), variant.name)
    with open_candidate(art, with_variant, variant.name, RunOptions()) as runner, open_runner(art, EAGER) as eager:
        return compare(runner, eager, samples.x, f"{art.card.name} {variant.name}", tol=TOLERANCES[variant.precision],
                       batches=batches, against="PyTorch (CPU)", samples_from=samples.source,
                       runtime=str(variant.runtime))


def record_verified(art: Artifact, name: str, suffix: str, write: Callable[[Path], Any], precision: Precision,
                    batches: tuple[int, ...], **fields: Any) -> Variant:
    """`write(path)` the model file atomically, validate it in place against PyTorch, then add it
    to the card as variant `name`; nothing lands unless validation passes."""
    final = f"{name}{suffix}"
    with atomic_path(art.path / final) as tmp:
        write(tmp)
        variant = art.new_variant(name, tmp.name, precision=precision, **fields)
        # validated in place, before it lands: an engine that disagrees with PyTorch is never recorded
        variant.validation = validate_against_eager(art, variant, batches)
    variant.file = final  # same bytes, renamed into place
    return art.add_variant(variant)


# --- entry point -------------------------------------------------------------------------------------

def compile_tensorrt(artifact: Artifact | Path, card: ModelCard, cfg: CompileConfig) -> Variant:
    """A serialized engine from the ONNX variant the precision rules pick, verified and recorded."""
    art = Artifact.of(artifact)
    trt = import_tensorrt()  # GPU first, then TensorRT: the message names the one missing
    if cfg.precision is Precision.int8 and cfg.source is None and tensorrt_qdq_variant(card) is None:
        card = _make_tensorrt_qdq(art, cfg.progress)
    plan = plan_build(card, cfg.precision, TrtCaps.of(trt), cfg.source)
    source = card.variants[plan.source]
    onnx_path = art.file(source)
    profile = profile_shapes(onnx_input(onnx_path)[1], cfg.max_batch, cfg.opt_batch)
    target = current_target(trt.__version__)
    cache = cfg.timing_cache or default_timing_cache(target)
    engine, built = serialize_engine(trt, onnx_path, plan, profile, cfg, cache)
    recipe = TensorRTRecipe(source=plan.source, source_sha256=source.sha256, strongly_typed=plan.strongly_typed,
                            flags=list(plan.flags), tf32=plan.tf32, profile=profile.to_dict(),
                            workspace_gb=cfg.workspace_gb, target=target, **built)
    return record_verified(
        art, cfg.variant_name, ".engine", lambda path: path.write_bytes(engine), cfg.precision,
        profile_batches(profile), runtime="tensorrt", recipe=recipe,
        made_by=f"TensorRT {trt.__version__} builder from {source.file} ({plan.describe()}) on {target.gpu}")


def profile_batches(profile: ProfileShapes) -> tuple[int, ...]:
    """The batch sizes a built variant is checked at: its profile's min, opt and max."""
    return tuple(sorted(set(profile.batches)))


def _make_tensorrt_qdq(art: Artifact, progress: bool) -> ModelCard:
    """Quantize with the TensorRT scheme (symmetric S8S8 QDQ, calibrated on the train split)."""
    from zoodeploy.optimize.quantize import QuantConfig, Scheme, quantize
    quantize(art, QuantConfig(scheme=Scheme.tensorrt, progress=progress), variant_name=QDQ_VARIANT)
    if tensorrt_qdq_variant(art.card) is None:
        raise OptimizeError(f"{art}: quantizing with the {TRT_SCHEME} scheme recorded no int8 QDQ variant")
    return art.card
