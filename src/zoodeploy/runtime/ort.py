"""ONNX Runtime runner: sessions configured deliberately, providers in use asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard
from zoodeploy.errors import ArtifactError, MissingDependencyError, first_line
from zoodeploy.runtime.base import Closing, RunOptions, check_input
from zoodeploy.runtime.gpu import cache_dir, profile_shapes
from zoodeploy.target import Device

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
# a device's execution providers, in ORT's order of preference (RunOptions.extra_providers go first,
# e.g. TENSORRT: TensorRT builds what it can of the graph, CUDA runs the rest)
_DEVICE_PROVIDERS = {Device.cpu: [CPU], Device.cuda: [CUDA, CPU]}


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


def create_session(path: str | Path, options: RunOptions,
                   provider_options: dict[str, dict[str, str]] | None = None) -> ort.InferenceSession:
    """An InferenceSession that really uses the providers asked for (ORT falls back silently)."""
    providers = providers_for(options)
    listed = [(p, provider_options[p]) if provider_options and p in provider_options else p for p in providers]
    try:
        sess = ort.InferenceSession(str(path), session_options(options), providers=listed)
    except Exception as e:  # onnxruntime raises its own Fail / InvalidProtobuf / NoSuchFile
        raise ArtifactError(f"ONNX Runtime cannot load {path}: {first_line(e)}") from None
    check_providers_in_use(providers, sess.get_providers())
    return sess


def check_providers_in_use(wanted: list[str], in_use: list[str]) -> None:
    """Every accelerator asked for must be registered in the session, not just the first."""
    missing = [p for p in wanted if p != CPU and p not in in_use]
    if missing:
        raise MissingDependencyError(
            f"{missing[0]} (ONNX Runtime fell back to {', '.join(in_use)})",
            "check the CUDA / cuDNN / TensorRT libraries that onnxruntime-gpu needs")


def tensorrt_ep_options(precision: str, input_name: str, input_dims: list[int | str | None],
                        max_batch: int = 64) -> dict[str, str]:
    """TensorRT EP settings for a variant: its precision's builder flags, one batch profile, and
    engine + timing caches on disk (without them every session rebuilds the engine)."""
    shapes = profile_shapes(input_dims, max_batch)
    dims = lambda s: f"{input_name}:{'x'.join(map(str, s))}"  # noqa: E731
    cache = str(cache_dir("ort-tensorrt"))
    return {"trt_fp16_enable": str(precision in ("fp16", "int8", "mixed")),
            "trt_int8_enable": str(precision == "int8"),  # explicit QDQ: scales come from the graph
            "trt_engine_cache_enable": "True", "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": cache,
            "trt_profile_min_shapes": dims(shapes.min), "trt_profile_opt_shapes": dims(shapes.opt),
            "trt_profile_max_shapes": dims(shapes.max)}


class OrtRunner(Closing):
    def __init__(self, path: Path, name: str, options: RunOptions,
                 provider_options: dict[str, dict[str, str]] | None = None):
        self.name = name
        self.path = path
        self.session = create_session(path, options, provider_options)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(int(d) for d in inp.shape[1:])
        self.batch = inp.shape[0] if isinstance(inp.shape[0], int) else None  # a fixed-batch export
        self.dtype = np.uint8 if inp.type == "tensor(uint8)" else np.float32
        self.settings: dict[str, Any] = {
            "runtime": "onnxruntime", "version": ort.__version__,
            "providers": self.session.get_providers(), "intra_op_threads": options.num_threads,
            "inter_op_threads": 1, "graph_optimization": "ORT_ENABLE_ALL", "spinning": options.spin,
            **({"provider_options": provider_options} if provider_options else {})}

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.input_shape, self.batch, self.dtype)
        return self.session.run(None, {self.input_name: x})[0]

    def close(self) -> None:
        self.session = None


def open_variant(artifact: Artifact, card: ModelCard, variant: str, options: RunOptions) -> OrtRunner:
    v = card.variants[variant]
    ep_options = None
    if TENSORRT in options.extra_providers:
        cache_dir("ort-tensorrt").mkdir(parents=True, exist_ok=True)
        dims = ["N", *card.input_shape]
        ep_options = {TENSORRT: tensorrt_ep_options(v.precision, card.input_name, dims)}
    return OrtRunner(Artifact.of(artifact).file(v), variant, options, ep_options)
