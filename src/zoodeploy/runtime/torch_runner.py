"""PyTorch eager runner: the trained checkpoint, the baseline for every speed-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoodeploy.card import ModelCard
from zoodeploy.runtime.base import RUNTIMES, RunOptions, check_input


class TorchRunner:
    def __init__(self, artifact: Path, card: ModelCard, name: str, options: RunOptions):
        from zoodeploy.models.train import load_trained
        self.name = name
        self.device = torch.device(options.device)
        self.model = load_trained(artifact, card).to(self.device)
        torch.set_num_threads(options.num_threads)
        self.input_shape = (3, card.input_size, card.input_size)
        self.settings: dict[str, Any] = {"runtime": "torch", "version": torch.__version__,
                                         "device": options.device, "intra_op_threads": options.num_threads,
                                         "mode": "eager"}

    @torch.inference_mode()
    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.input_shape)
        out = self.model(torch.from_numpy(x).to(self.device))
        return out.float().cpu().numpy()

    def close(self) -> None:
        self.model = None


RUNTIMES.add("torch", TorchRunner)
