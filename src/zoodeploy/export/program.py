"""Capture with torch.export: the one graph both the ONNX file and the `.pt2` program come from."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from zoodeploy.errors import ExportError

MAX_BATCH = 4096  # the dynamic batch dimension's upper bound for torch.export's shape guards
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# how torch.onnx names the operator it could not translate, in its error text
_OP_PATTERNS = (re.compile(r"OpOverload\(op='([\w.:]+)', overload='(\w+)'\)"),
                re.compile(r"target=torch\.ops\.([\w.]+)"))


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


def save_program(program: torch.export.ExportedProgram, path: Path) -> None:
    # a file object: torch.export.save insists on a .pt2 name, and `path` is a temp file
    with open(path, "wb") as f:
        torch.export.save(program, f)


def load_program(path: Path) -> nn.Module:
    """A saved program, loaded back as a callable module (what the torch-export runtime runs)."""
    with open(path, "rb") as f:  # a file object, as for saving: `path` may be a temp name
        return torch.export.load(f).module()


def failed_op(e: BaseException) -> str | None:
    """The operator torch.onnx failed to translate, from its error text (None: not an operator)."""
    text = _ANSI.sub("", _chain_text(e))
    for pattern in _OP_PATTERNS:
        m = pattern.search(text)
        if m:
            op = ".".join(g for g in m.groups() if g).replace("::", ".")
            return op.removesuffix(".default")
    return None


def gist(e: BaseException) -> str:
    """The root cause of a torch.export / torch.onnx failure as one short line.

    Their messages open with generic advice and put the cause under "Exception summary".
    """
    text = _ANSI.sub("", str(e))
    summary = text.split("## Exception summary", 1)[-1]
    m = re.search(r"<class '(?:[\w.]+\.)?(\w+)'>: (.+)", summary)
    line = f"{m.group(1)}: {m.group(2)}" if m else next(
        (ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    line = " ".join(line.split())
    return line if len(line) <= 300 else line[:297] + "..."


def _chain_text(e: BaseException) -> str:
    parts, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        parts.append(str(e))
        e = e.__cause__ or e.__context__
    return "\n".join(parts)
