"""ONNX Runtime runner: sessions configured deliberately, providers in use asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from zoodeploy.card import ModelCard, variant_path
from zoodeploy.errors import ArtifactError, MissingDependencyError
from zoodeploy.runtime.base import RUNTIMES, RunOptions, check_input

CPU = "CPUExecutionProvider"
_DEVICE_PROVIDERS = {"cpu": [CPU], "cuda": ["CUDAExecutionProvider", CPU]}


def session_options(options: RunOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.num_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spin else "0")
    so.log_severity_level = 3
    return so


def providers_for(options: RunOptions) -> list[str]:
    if options.device not in _DEVICE_PROVIDERS:
        raise ArtifactError(f"unknown device {options.device!r}; use cpu or cuda")
    wanted = list(options.extra_providers) + _DEVICE_PROVIDERS[options.device]
    missing = [p for p in wanted if p not in ort.get_available_providers()]
    if missing:
        raise MissingDependencyError(
            f"ONNX Runtime provider {missing[0]}",
            "install the gpu extra (pip install 'zoodeploy[gpu]', which brings onnxruntime-gpu) "
            "on a machine with an NVIDIA GPU and CUDA")
    return wanted


def create_session(path: str | Path, options: RunOptions) -> ort.InferenceSession:
    """An InferenceSession that really uses the providers asked for (ORT falls back silently)."""
    providers = providers_for(options)
    try:
        sess = ort.InferenceSession(str(path), session_options(options), providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail / InvalidProtobuf / NoSuchFile
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArtifactError(f"ONNX Runtime cannot load {path}: {first[:300]}") from None
    in_use = sess.get_providers()
    if in_use[0] != providers[0]:
        raise MissingDependencyError(
            f"{providers[0]} (ONNX Runtime fell back to {in_use[0]})",
            "check the CUDA / cuDNN / TensorRT libraries that onnxruntime-gpu needs")
    return sess


class OrtRunner:
    def __init__(self, path: Path, name: str, options: RunOptions):
        self.name = name
        self.path = path
        self.session = create_session(path, options)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(int(d) for d in inp.shape[1:])
        self.settings: dict[str, Any] = {
            "runtime": "onnxruntime", "version": ort.__version__,
            "providers": self.session.get_providers(), "intra_op_threads": options.num_threads,
            "inter_op_threads": 1, "graph_optimization": "ORT_ENABLE_ALL", "spinning": options.spin}

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.input_shape)
        return self.session.run(None, {self.input_name: x})[0]

    def close(self) -> None:
        self.session = None


@RUNTIMES.register("onnxruntime")
def _open(artifact: Path, card: ModelCard, variant: str, options: RunOptions) -> OrtRunner:
    return OrtRunner(variant_path(artifact, card.variants[variant]), variant, options)
