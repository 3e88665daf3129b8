"""PyTorch -> validated, self-describing ONNX (and a torch.export program for torch-tensorrt)."""

from zoodeploy.export.metadata import read_card_metadata, set_card_metadata
from zoodeploy.export.onnx_export import (FP32_FILE, PROGRAM, PROGRAM_FILE, ExportConfig, ExportFormat,
                                          export_artifact, export_model)
from zoodeploy.export.source import export_source
from zoodeploy.export.validate import Tolerance

__all__ = ["FP32_FILE", "PROGRAM", "PROGRAM_FILE", "ExportConfig", "ExportFormat", "Tolerance", "export_artifact",
           "export_model", "export_source", "read_card_metadata", "set_card_metadata"]
