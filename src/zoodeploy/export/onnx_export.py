"""PyTorch -> ONNX with the dynamo exporter, validated against PyTorch before it lands."""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from zoodeploy.card import ModelCard, Variant, add_variant, load_card, make_variant
from zoodeploy.errors import ExportError
from zoodeploy.export.metadata import set_card_metadata
from zoodeploy.export.validate import Tolerance, check, compare_logits
from zoodeploy.fileio import atomic_path
from zoodeploy.runtime.base import RunOptions
from zoodeploy.runtime.ort import create_session

FP32_FILE = "fp32.onnx"


@dataclass
class ExportConfig:
    opset: int = 18
    batch: int | None = None  # None: dynamic batch dimension; N: fixed
    validate_batches: tuple[int, ...] = (1, 8)
    tolerance: Tolerance = field(default_factory=Tolerance)

    def __post_init__(self):
        if self.batch is not None and self.batch < 1:
            raise ExportError("--batch must be `dynamic` or a positive integer")
        if self.opset < 17:
            raise ExportError(f"--opset {self.opset} is too old for the dynamo exporter; use 17 or newer")
        if self.batch is not None:  # a fixed-batch graph is validated at its own batch only
            self.validate_batches = (self.batch,)


def _export_proto(model: nn.Module, example: torch.Tensor, cfg: ExportConfig, name: str) -> onnx.ModelProto:
    dynamic = None if cfg.batch is not None else ({0: torch.export.Dim("batch", min=1, max=4096)},)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            program = torch.onnx.export(model, (example,), input_names=["input"], output_names=["logits"],
                                        dynamic_shapes=dynamic, dynamo=True, opset_version=cfg.opset,
                                        verbose=False, report=False)
    except Exception as e:
        raise ExportError(f"{name}: the torch.onnx dynamo exporter failed: {_first_line(e)}") from None
    return program.model_proto


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:400]


def export_model(model: nn.Module, card: ModelCard, out: Path, samples: np.ndarray,
                 cfg: ExportConfig) -> dict:
    """Export `model` to `out`, check it and compare it with PyTorch; returns the figures.

    Nothing is written at `out` unless every check passes.
    """
    model = model.eval()
    example = torch.from_numpy(samples[: (cfg.batch or 2)])
    proto = _export_proto(model, example, cfg, card.name)
    set_card_metadata(proto, card, variant="fp32")
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except Exception as e:
            raise ExportError(f"{card.name}: onnx.checker rejected the exported graph: {_first_line(e)}") from None
        figures = validate_against_torch(tmp, model, samples, cfg, f"{card.name} fp32 ONNX export")
    return figures


def validate_against_torch(path: Path, model: nn.Module, samples: np.ndarray, cfg: ExportConfig,
                           what: str) -> dict:
    """ONNX Runtime vs PyTorch on real samples, at each validation batch size."""
    session = create_session(path, RunOptions())
    comparisons = []
    for b in cfg.validate_batches:
        reps = -(-max(b, 16) // b)  # at least 16 samples per batch size
        xs = [np.resize(samples, (reps * b, *samples.shape[1:]))[i * b:(i + 1) * b] for i in range(reps)]
        onnx_out = np.concatenate([session.run(None, {"input": x})[0] for x in xs])
        with torch.inference_mode():
            ref = np.concatenate([model(torch.from_numpy(x)).numpy() for x in xs])
        comparisons.append(compare_logits(onnx_out, ref, b))
    figures = check(comparisons, cfg.tolerance, what)
    figures["onnx_checker"] = "full_check passed"
    return figures


def export_artifact(artifact: str | Path, cfg: ExportConfig | None = None) -> Variant:
    """Export a trained artifact's checkpoint to ARTIFACT/fp32.onnx and record it in the card."""
    from zoodeploy.models.data import splits_for
    from zoodeploy.models.train import load_trained
    cfg = cfg or ExportConfig()
    card = load_card(artifact)
    model = load_trained(artifact, card)
    if card.data is not None:
        samples = splits_for(card.data).val.arrays(card.preprocessing, limit=64)
        source = f"{card.data.source} val split"
    else:
        samples = np.random.default_rng(0).standard_normal(
            (16, 3, card.input_size, card.input_size)).astype(np.float32)
        source = "random normal inputs (no data recorded in the card)"
    figures = export_model(model, card, Path(artifact) / FP32_FILE, samples, cfg)
    figures["samples"] = source
    variant = make_variant(artifact, "fp32", FP32_FILE, precision="fp32", runtime="onnxruntime",
                           made_by=f"torch.onnx.export(dynamo=True, opset {cfg.opset}) from {card.checkpoint}",
                           recipe={**asdict(cfg), "batch": cfg.batch or "dynamic"}, validation=figures)
    add_variant(artifact, variant)
    return variant
