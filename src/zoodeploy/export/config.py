"""How to export (`ExportConfig`, `ExportFormat`) and the names of what an export writes, without
importing torch: the CLI declares its options from them and refuses a bad one at once; the export
itself (export/onnx_export.py) needs torch, onnx and onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from zoodeploy.errors import ExportError
from zoodeploy.export.validate import EXPORT, TOLERANCES, Tolerance
from zoodeploy.recipes import ExportRecipe

FP32_FILE = "fp32.onnx"
PROGRAM_FILE = "fp32.pt2"
PROGRAM = "exported-program"
PROGRAM_RUNTIME = "torch-export"  # runtime/torch_runner.py runs a saved program
MIN_OPSET = 18  # torch.onnx's function library is written for 18; older ones go through a version
#                converter that torch.onnx itself says may fail (and then keeps 18 without saying so)
MAX_OPSET = 23  # torch.onnx's newest (ONNX_MAX_OPSET); 18..23 all export and run in ONNX Runtime 1.23
DEFAULT_OPSET = 18  # the oldest of those: the widest runtime support (ONNX Runtime >= 1.14)


class ExportFormat(str, Enum):
    onnx = "onnx"  # fp32.onnx
    exported_program = "exported-program"  # fp32.onnx and fp32.pt2 (torch.export program)


@dataclass
class ExportConfig:
    opset: int = DEFAULT_OPSET
    batch: int | str | None = None  # None or "dynamic": a dynamic batch dimension; N: fixed at N
    input_size: int | None = None  # None: the card's; else re-export at this height = width
    format: ExportFormat = ExportFormat.onnx
    validate_batches: tuple[int, ...] = (1, 8)  # batch sizes validated (dynamic batch only)
    samples: int = 16  # images compared with PyTorch at each batch size
    tolerance: Tolerance = TOLERANCES[EXPORT]

    def __post_init__(self):
        self.batch = _parse_batch(self.batch)
        try:
            self.format = ExportFormat(self.format)
        except ValueError:
            raise ExportError(f"--format {self.format!r}: use onnx or exported-program") from None
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ExportError(f"--opset {self.opset} is not supported: the dynamo exporter writes opsets "
                              f"{MIN_OPSET} to {MAX_OPSET}")
        if self.input_size is not None and self.input_size < 1:
            raise ExportError(f"--input-size must be a positive number of pixels, got {self.input_size}")
        if self.samples < 1 or not self.validate_batches or min(self.validate_batches) < 1:
            raise ExportError("validation needs at least one sample and batch sizes >= 1")
        if self.batch is not None:  # a fixed-batch graph runs (and is validated) at its own batch only
            self.validate_batches = (self.batch,)

    def recipe(self) -> ExportRecipe:
        return ExportRecipe(opset=self.opset, batch=self.batch or "dynamic", input_size=self.input_size,
                            format=self.format.value, validate_batches=list(self.validate_batches),
                            samples=self.samples,
                            exporter=f"torch.export + torch.onnx.export(dynamo=True) {_torch_version()}")


def _parse_batch(batch: int | str | None) -> int | None:
    if batch is None or batch == "dynamic":
        return None
    try:
        n = int(batch)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ExportError(f"--batch must be `dynamic` or a positive integer, got {batch!r}")
    return n


def _torch_version() -> str:
    import torch  # loaded already: a recipe is written by an export
    return torch.__version__
