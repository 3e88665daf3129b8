"""PyTorch -> validated, self-describing ONNX (and a torch.export program for torch-tensorrt).

Names are imported on first use, so `zoodeploy.export.metadata` and `.validate` (which other
stages use on ONNX files) and `.config` (what the CLI declares its options from) do not pull in torch.
"""

from importlib import import_module

_HOME = {
    "FP32_FILE": "config", "PROGRAM": "config", "PROGRAM_FILE": "config",
    "ExportConfig": "config", "ExportFormat": "config", "export_artifact": "onnx_export",
    "export_model": "onnx_export", "export_source": "source", "Tolerance": "validate",
    "read_card_metadata": "metadata", "set_card_metadata": "metadata",
}
__all__ = list(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
