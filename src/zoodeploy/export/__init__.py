"""PyTorch -> validated, self-describing ONNX."""

from zoodeploy.export.onnx_export import FP32_FILE, ExportConfig, export_artifact, export_model

__all__ = ["FP32_FILE", "ExportConfig", "export_artifact", "export_model"]
