"""PyTorch -> ONNX with the dynamo exporter, validated against PyTorch before it lands.

One `torch.export` capture feeds both outputs: the ONNX file (translated by torch.onnx) and,
with `--format exported-program`, the `.pt2` program the torch-tensorrt path compiles.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from zoodeploy.artifact import REFERENCE, Artifact, put_variant
from zoodeploy.card import ExportFailure, GraphStats, ModelCard, Validation, Variant
from zoodeploy.errors import ExportError, ZoodeployError
from zoodeploy.export.config import FP32_FILE, PROGRAM, PROGRAM_FILE, PROGRAM_RUNTIME, ExportConfig, ExportFormat
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.export.program import capture, example_input, quiet
from zoodeploy.export.validate import ToleranceError, compare, validation_samples
from zoodeploy.fileio import atomic_path
from zoodeploy.models.artifact import load_model
from zoodeploy.models.saved_program import failed_op, gist, load_program, save_program
from zoodeploy.onnx_graph import op_counts
from zoodeploy.progress import bar
from zoodeploy.runtime.base import RunOptions
from zoodeploy.runtime.ort import OrtRunner

FP32 = REFERENCE
INPUT, OUTPUT = "input", "logits"


class _Steps:
    """The step an export is at (a bar on a terminal) and the seconds each step took."""

    def __init__(self, name: str, total: int, enabled: bool):
        self.bar = bar(total=total, desc=f"export {name}", unit="step", disable=not enabled, leave=False)
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.bar.set_postfix_str(label)
        start = time.perf_counter()
        yield
        self.seconds[label] = round(time.perf_counter() - start, 3)
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


@dataclass
class ExportFigures:
    """What an export measured: the ONNX file's validation (and the program's), its graph."""

    onnx: Validation
    program: Validation | None
    graph: GraphStats
    seconds: float  # all steps together


def export_model(model: nn.Module, card: ModelCard, out: Path, samples: np.ndarray, cfg: ExportConfig,
                 *, progress: bool = False, samples_from: str = "") -> ExportFigures:
    """Export `model` to `out` (and its program to `out`.pt2 for format exported-program), check
    both against PyTorch on `samples`; returns what was measured.

    Nothing is written at `out` (or beside it) unless every check passes.
    """
    model = model.eval()
    out = Path(out)
    program_out = out.with_suffix(".pt2") if cfg.format is ExportFormat.exported_program else None
    steps = _Steps(card.name, 5 if program_out else 4, progress)
    try:
        # no autograd bookkeeping while tracing an inference graph: the same graph, and capture +
        # translation take 10-18% less time (measured: ResNet-101 16.3 -> 14.7 s, GoogLeNet 13.4 -> 11.0 s)
        with steps.step("torch.export"), torch.no_grad():
            example = example_input(torch.from_numpy(samples), cfg.batch)
            program = capture(model, example, cfg.batch, card.name)
        with steps.step("torch.onnx"), torch.no_grad():
            proto = to_onnx(program, example, cfg, card)
        with contextlib.ExitStack() as files:
            tmp = files.enter_context(atomic_path(out))
            with steps.step("onnx.checker"):
                onnx.save(proto, str(tmp))
                check_graph(tmp, proto, card, cfg)
            with steps.step("validate"):
                figures = validate_onnx(tmp, model, samples, cfg, f"{card.name} fp32 ONNX export", samples_from)
            program_figures = None
            if program_out:
                tmp_program = files.enter_context(atomic_path(program_out))
                with steps.step("validate .pt2"):
                    save_program(program, tmp_program)
                    program_figures = validate_program(tmp_program, model, samples, cfg, card.name,
                                                       samples_from)
    finally:
        steps.close()
    graph = GraphStats(nodes=len(proto.graph.node), op_counts=op_counts(proto))
    return ExportFigures(figures, program_figures, graph, round(sum(steps.seconds.values()), 3))


def to_onnx(program: torch.export.ExportedProgram, example: torch.Tensor, cfg: ExportConfig,
            card: ModelCard) -> onnx.ModelProto:
    """Translate the captured program; the card's essentials go into its metadata_props."""
    try:
        with quiet():
            # optimize=True: onnxscript folds constants and removes the shape arithmetic of the
            # dynamic batch (MobileNetV2: 562 -> 100 nodes) for ~1 s; verify/report stay off,
            # validation below is stricter than torch.onnx's own verify
            onnx_program = torch.onnx.export(program, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                             opset_version=cfg.opset, dynamo=True, optimize=True,
                                             verify=False, report=False, verbose=False)
    except Exception as e:  # noqa: BLE001 - the exporter's errors are all "this model did not translate"
        op = failed_op(e)
        if op:
            raise ExportError(f"{card.name}: torch.onnx cannot translate operator {op} at opset {cfg.opset} "
                              f"({gist(e)}); replace it in the model or try another --opset") from None
        raise ExportError(f"{card.name}: torch.onnx cannot translate the model: {gist(e)}") from None
    proto = onnx_program.model_proto
    if cfg.batch is None:
        _name_batch_dim(proto)
    shape = [cfg.batch or "batch", *card.preprocessing.input_shape]
    return set_card_metadata(proto, card, variant=FP32, input_shape=shape, opset=cfg.opset)


def _name_batch_dim(proto: onnx.ModelProto) -> None:
    # torch.export names the symbol s0/s77; "batch" is what people and TensorRT profiles read
    for value in (*proto.graph.input, *proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if dim.HasField("dim_param"):
            dim.dim_param = "batch"


def check_graph(path: Path, model: onnx.ModelProto, card: ModelCard, cfg: ExportConfig) -> None:
    """onnx.checker on the saved file (full check: strict shape inference too), then the graph's
    opset and inputs / outputs."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # noqa: BLE001 - checker and shape inference raise several types
        raise ExportError(f"{card.name}: onnx.checker rejected the exported graph: {gist(e)}") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset != cfg.opset:
        raise ExportError(f"{card.name}: asked for opset {cfg.opset} but the exporter wrote {opset}")
    want_in = [cfg.batch or "batch", *card.preprocessing.input_shape]
    want_out = [cfg.batch or "batch", card.num_classes]
    got = [(v.name, _dims(v)) for v in (*model.graph.input, *model.graph.output)]
    if got != [(INPUT, want_in), (OUTPUT, want_out)]:
        raise ExportError(f"{card.name}: the exported graph has inputs/outputs {got}; expected "
                          f"{INPUT} {want_in} -> {OUTPUT} {want_out}")


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


class _Module:
    """A PyTorch module (the eager model, a loaded program) as a runner on numpy batches."""

    def __init__(self, module: nn.Module):
        self.module = module

    @torch.inference_mode()
    def run(self, x: np.ndarray) -> np.ndarray:
        return self.module(torch.from_numpy(x)).numpy()


def validate_onnx(path: Path, model: nn.Module, samples: np.ndarray, cfg: ExportConfig, what: str,
                  samples_from: str = "") -> Validation:
    """ONNX Runtime (CPU) vs PyTorch on the same images, at each validation batch size."""
    try:
        runner = OrtRunner(path, FP32, RunOptions(spin=False))
    except ZoodeployError as e:
        raise ExportError(f"{what}: ONNX Runtime cannot load the exported graph: {e}") from None
    with runner:
        figures = compare(runner, _Module(model), samples, what, tol=cfg.tolerance, batches=cfg.validate_batches,
                          samples_from=samples_from, runtime=f"onnxruntime {runner.settings['providers'][0]}")
    figures.checks.append("onnx.checker full_check passed")
    return figures


def validate_program(path: Path, model: nn.Module, samples: np.ndarray, cfg: ExportConfig, name: str,
                     samples_from: str = "") -> Validation:
    """The saved .pt2, loaded back from disk, vs the eager model."""
    try:
        module = load_program(path)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"{name}: the saved exported program does not load back: {gist(e)}") from None
    return compare(_Module(module), _Module(model), samples, f"{name} exported program (.pt2)", tol=cfg.tolerance,
                   batches=cfg.validate_batches, samples_from=samples_from,
                   runtime=f"torch.export.load (torch {torch.__version__})")


def export_artifact(artifact: Artifact | str | Path, cfg: ExportConfig | None = None, *,
                    progress: bool = False) -> Variant:
    """Export an artifact's checkpoint to ARTIFACT/fp32.onnx (and fp32.pt2), validated, and record
    the variant(s) in the card; returns the fp32 variant."""
    cfg = cfg or ExportConfig()
    art = Artifact.of(artifact)
    card = resized(art.card, cfg.input_size, art.path)
    model = load_model(art, card)
    samples, source = validation_samples(art, cfg.samples, card)
    try:
        figures = export_model(model, card, art.path / FP32_FILE, samples, cfg, progress=progress,
                               samples_from=source)
    except ToleranceError as e:
        _record_failure(art, str(e), e.figures)
        raise
    made_by = (f"torch.export + torch.onnx.export(dynamo=True, opset {cfg.opset}) of {card.checkpoint} "
               f"(torch {torch.__version__})")
    fp32 = art.new_variant(FP32, FP32_FILE, precision="fp32", runtime="onnxruntime", made_by=made_by,
                           recipe=cfg.recipe(), validation=figures.onnx, graph=figures.graph, seconds=figures.seconds)
    program = figures.program and art.new_variant(
        PROGRAM, PROGRAM_FILE, precision="fp32", runtime=PROGRAM_RUNTIME, recipe=cfg.recipe(),
        made_by=f"torch.export.save of the program fp32.onnx was translated from (torch {torch.__version__})",
        validation=figures.program)
    _record(art, card, [v for v in (fp32, program) if v])
    return fp32


def resized(card: ModelCard, size: int | None, artifact: Path) -> ModelCard:
    """The card for an export at `size` px: same preprocessing, scaled (crop fraction kept)."""
    if size is None or (size, size) == card.preprocessing.size:
        return card
    if card.source is None or card.source.kind == "zoo":  # other sources are checked by running them
        from zoodeploy.models.zoo import get_spec
        spec = get_spec(card.source.ref if card.source else card.name)  # --name may rename a zoo model
        if size < spec.min_input_size:
            raise ExportError(f"{card.name} needs an input of at least {spec.min_input_size}px, got --input-size {size}")
    others = sorted(set(card.variants) - {FP32, PROGRAM})
    if others:
        raise ExportError(f"{artifact} has variants made at {card.preprocessing.size_text} ({', '.join(others)}); export "
                          f"at {size}px into a new artifact directory with -o OUT")
    return card.model_copy(update={"preprocessing": card.preprocessing.at_size(size)})


def _record(art: Artifact, exported: ModelCard, variants: list[Variant]) -> None:
    with art.update() as card:
        if card.preprocessing != exported.preprocessing:  # a new input size: the old program is stale
            _drop(art.path, card, PROGRAM)
        card.preprocessing = exported.preprocessing
        card.provenance.export_failure = None
        for v in variants:
            put_variant(card, v)


def _drop(artifact: Path, card: ModelCard, name: str) -> None:
    v = card.variants.pop(name, None)
    if v is not None:
        (artifact / v.file).unlink(missing_ok=True)


def _record_failure(art: Artifact, message: str, figures: Validation) -> None:
    """An out-of-tolerance export leaves no model, but its measured figures go into the card."""
    with art.update() as card:
        card.provenance.export_failure = ExportFailure(time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                       error=message, validation=figures)
