"""TensorRT engine runner (runtime "tensorrt").

Importing this module needs neither TensorRT nor a GPU: opening a runner checks for both (GPU
first, then TensorRT, `runtime.gpu`) and refuses an engine built for another GPU model or
TensorRT version with the command that rebuilds it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard
from zoodeploy.errors import ArtifactError, ValidationError
from zoodeploy.runtime.base import Closing, RunOptions, check_input
from zoodeploy.runtime.gpu import check_engine_target, current_target, import_tensorrt, run_chunked


# --- the runner ---------------------------------------------------------------------------------------

def deserialize_engine(trt: ModuleType, runtime: Any, path: Path) -> Any:
    """The engine in `path`; `runtime` (a trt.Runtime) must outlive it."""
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:  # TensorRT logs the reason and returns None
        raise ArtifactError(f"TensorRT {trt.__version__} cannot deserialize {path} (see the TensorRT log "
                            "above); rebuild it with `zoodeploy compile ARTIFACT --backend tensorrt`")
    return engine


def _torch_dtype(trt: ModuleType, dtype: Any):
    import torch
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT8: torch.int8, trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool}
    if dtype not in table:
        raise ArtifactError(f"engine I/O of type {dtype} is not supported; rebuild the engine from an "
                            "fp32-input ONNX graph")
    return table[dtype]


class TensorRTRunner(Closing):
    """Runs a serialized engine with TensorRT 10's named-tensor API on torch CUDA buffers."""

    def __init__(self, artifact: Artifact | Path, card: ModelCard, name: str, options: RunOptions):
        import torch
        variant = card.variants[name]
        trt = import_tensorrt()
        check_engine_target(variant, current_target(trt.__version__), artifact)
        path = Artifact.of(artifact).file(variant)
        self.name = name
        self.input_shape = card.input_shape
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)  # kept: TensorRT objects must outlive what they made
        self.engine = deserialize_engine(trt, self.runtime, path)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ArtifactError(f"{path} has inputs {inputs} and outputs {outputs}; expected one of each")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        self.output_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.output_name))
        lo, _, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.batch_range = (int(lo[0]), int(hi[0]))
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.stream = torch.cuda.Stream(self.device)
        self.settings: dict[str, Any] = {
            "runtime": "tensorrt", "version": trt.__version__, "device": torch.cuda.get_device_name(self.device),
            "batch_range": list(self.batch_range), "io": "host numpy -> CUDA -> host numpy",
            "precision": str(variant.precision), "flags": getattr(variant.recipe, "flags", None)}

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.input_shape)
        return run_chunked(self._run_batch, x, *self.batch_range)

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        import torch
        with torch.cuda.stream(self.stream):
            inp = torch.from_numpy(x).to(self.device).to(self.input_dtype).contiguous()
            if not self.context.set_input_shape(self.input_name, tuple(inp.shape)):
                raise ValidationError(f"engine {self.name!r} rejects input shape {tuple(inp.shape)}")
            out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)),
                              dtype=self.output_dtype, device=self.device)
            self.context.set_tensor_address(self.input_name, inp.data_ptr())
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise ValidationError(f"TensorRT failed to execute engine {self.name!r} (see its log)")
            result = out.float().cpu()  # copies on this stream after the engine's work
        return result.numpy()

    def close(self) -> None:
        self.context = self.engine = self.runtime = None  # in reverse order of creation
