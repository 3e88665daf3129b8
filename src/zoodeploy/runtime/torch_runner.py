"""PyTorch eager runner: the trained checkpoint, the baseline for every speed-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard
from zoodeploy.errors import ArtifactError
from zoodeploy.models.artifact import load_model
from zoodeploy.runtime.base import Closing, RunOptions, check_input


class TorchRunner(Closing):
    def __init__(self, artifact: Path, card: ModelCard, name: str, options: RunOptions):
        self.name = name
        self.device = torch.device(options.device)
        self.model = load_model(artifact, card).to(self.device)
        torch.set_num_threads(options.num_threads)
        self.input_shape = card.input_shape
        self.dtype = card.preprocessing.np_dtype
        self.settings: dict[str, Any] = {"runtime": "torch", "version": torch.__version__,
                                         "device": options.device, "intra_op_threads": options.num_threads,
                                         "mode": "eager"}

    @torch.inference_mode()
    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.input_shape, dtype=self.dtype)
        out = self.model(torch.from_numpy(x).to(self.device))
        return out.float().cpu().numpy()

    def close(self) -> None:
        self.model = None


class ProgramRunner(Closing):
    """A saved torch.export program (`export --format exported-program`), loaded from its file."""

    def __init__(self, artifact: Artifact | Path, card: ModelCard, name: str, options: RunOptions):
        variant = card.variants[name]
        path = Artifact.of(artifact).file(variant)
        try:
            program = torch.export.load(str(path))
            if options.device != "cpu":
                program = torch.export.passes.move_to_device_pass(program, options.device)
            self.module = program.module()
        except Exception as e:  # noqa: BLE001 - a foreign or truncated file fails the loader any way
            raise ArtifactError(f"cannot load {path} with torch.export.load ({type(e).__name__}); re-export "
                                "it with `zoodeploy export ARTIFACT --format exported-program`") from None
        self.name = name
        self.device = torch.device(options.device)
        torch.set_num_threads(options.num_threads)
        self.input_shape = card.input_shape
        self.dtype = card.preprocessing.np_dtype
        fixed = getattr(variant.recipe, "batch", None)  # an int for a fixed-batch export, else "dynamic"
        self.batch = fixed if isinstance(fixed, int) else None
        self.settings: dict[str, Any] = {"runtime": "torch-export", "version": torch.__version__,
                                         "device": options.device, "intra_op_threads": options.num_threads,
                                         "mode": "torch.export program"}

    @torch.inference_mode()
    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.input_shape, self.batch, self.dtype)
        return self.module(torch.from_numpy(x).to(self.device)).float().cpu().numpy()

    def close(self) -> None:
        self.module = None
