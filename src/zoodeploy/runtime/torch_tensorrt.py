"""Torch-TensorRT runner (runtime "torch-tensorrt"): a saved ExportedProgram whose graph calls
TensorRT engines, reloaded with torch.export.load. Importing it needs neither GPU nor package."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard
from zoodeploy.errors import ArtifactError, first_line
from zoodeploy.runtime.base import Closing, RunOptions, check_input
from zoodeploy.runtime.gpu import (ProfileShapes, check_engine_target, current_target, import_gpu_package,
                                   require_cuda, run_chunked)


def import_torch_tensorrt() -> ModuleType:
    """The `torch_tensorrt` module, after checking for a GPU (its import also registers the
    `tensorrt::execute_engine` op that a saved program needs to load)."""
    require_cuda()
    return import_gpu_package("torch_tensorrt", "Torch-TensorRT")


def tensorrt_version() -> str:
    return import_gpu_package("tensorrt", "TensorRT").__version__


class TorchTensorRTRunner(Closing):
    def __init__(self, artifact: Artifact | Path, card: ModelCard, name: str, options: RunOptions):
        import torch
        variant = card.variants[name]
        torch_tensorrt = import_torch_tensorrt()
        check_engine_target(variant, current_target(tensorrt_version()), artifact)
        path = Artifact.of(artifact).file(variant)
        try:
            self.module = torch.export.load(str(path)).module()
        except Exception as e:
            raise ArtifactError(f"cannot load {path} with torch.export.load: {first_line(e)}; rebuild it with "
                                "`zoodeploy compile ARTIFACT --backend torch-tensorrt`") from None
        self.name = name
        self.input_shape = card.input_shape
        self.batch_range = ProfileShapes.from_dict(variant.recipe.profile.model_dump()).batches[::2]
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.settings: dict[str, Any] = {
            "runtime": "torch-tensorrt", "version": torch_tensorrt.__version__,
            "tensorrt": tensorrt_version(), "device": torch.cuda.get_device_name(self.device),
            "batch_range": list(self.batch_range), "io": "host numpy -> CUDA -> host numpy",
            "precision": str(variant.precision)}

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.input_shape)
        return run_chunked(self._run_batch, x, *self.batch_range)

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        import torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(x).to(self.device))
        return out.float().cpu().numpy()

    def close(self) -> None:
        self.module = None
