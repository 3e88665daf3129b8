"""Capture with torch.export: the one graph both the ONNX file and the `.pt2` program come from."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from zoodeploy.errors import ExportError
from zoodeploy.models.saved_program import gist

MAX_BATCH = 4096  # the dynamic batch dimension's upper bound for torch.export's shape guards


def example_input(samples: torch.Tensor, batch: int | None) -> torch.Tensor:
    """The input to trace with: the fixed batch, or 2 for a dynamic one (torch.export
    specializes a dimension whose example size is 0 or 1)."""
    n = batch or 2
    reps = -(-n // len(samples))
    return samples.repeat(reps, 1, 1, 1)[:n].contiguous()


def capture(model: nn.Module, example: torch.Tensor, batch: int | None, name: str) -> torch.export.ExportedProgram:
    """torch.export (non-strict) of an eval-mode model, with a dynamic batch unless `batch` is set."""
    dims = None if batch else ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)
    try:
        with out_of_place(model), quiet():
            program = torch.export.export(model, (example,), dynamic_shapes=dims, strict=False)
    except Exception as e:  # noqa: BLE001 - torch.export fails in many ways; all mean "cannot capture"
        raise ExportError(f"{name}: torch.export cannot capture the model: {gist(e)}") from None
    outputs = program.graph_signature.user_outputs
    if len(outputs) != 1:
        raise ExportError(f"{name}: the model returns {len(outputs)} outputs in eval mode; export needs "
                          "one logits tensor (return only the logits at inference)")
    return program


@contextlib.contextmanager
def out_of_place(model: nn.Module) -> Iterator[None]:
    """torch.nn's in-place activations (ReLU(inplace=True), ...) made out-of-place while capturing.

    The numbers are the same, and the graph (functional after export either way) too; but
    decomposing in-place ops under a dynamic batch is slow. Measured CPU seconds of a whole
    export, as built vs out of place (benchmarks/export_zoo.py --compare-inplace): MobileNetV2
    15.4 vs 9.5, MobileNetV3-Large 18.9 vs 13.3, ResNet-18 7.8 vs 6.1, DenseNet-121 35.3 vs 33.2.
    """
    flipped = [m for m in model.modules()
               if type(m).__module__.startswith("torch.nn.") and getattr(m, "inplace", None) is True]
    for m in flipped:
        m.inplace = False
    try:
        yield
    finally:
        for m in flipped:
            m.inplace = True


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torch's and onnxscript's loggers (below ERROR), warnings and stderr prints silenced.

    They narrate progress and dump whole graphs on failures (torch.export prints the partial
    graph straight to sys.stderr); the export's progress bar and its one-line errors say what
    matters.
    """
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("torch", "onnxscript")]
    saved = [(logger, logger.level) for logger in map(logging.getLogger, names)]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)
