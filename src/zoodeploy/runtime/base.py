"""One small interface to run a variant: a Runner maps the model's input tensor (float32 NCHW, or
what the card's preprocessing says: NHWC, uint8, one channel, H != W) to logits.

This module holds what every runner shares: the `Runner` protocol and `RunOptions`;
`runtime/backends.py` holds the `RUNTIMES` registry (which module opens each runtime's variants,
imported only when one is opened) and `open_runner`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from zoodeploy.card import ModelCard
from zoodeploy.errors import ArtifactError, ZoodeployError
from zoodeploy.target import Device

EAGER = "eager"  # the PyTorch model itself, the baseline every speed-up is measured against


class InputError(ZoodeployError):
    """An input tensor of the wrong shape or dtype."""


@dataclass(frozen=True)
class RunOptions:
    threads: int | None = None  # intra-op threads; None = every core this process may use
    device: Device = Device.cpu  # what the runner runs on (zoodeploy.target); "cpu" / "cuda" are accepted
    spin: bool = True  # ORT thread spinning: lowest latency, burns idle CPU
    # ONNX Runtime execution providers put before the device's own, e.g. ("TensorrtExecutionProvider",);
    # an ONNX Runtime detail the other runners ignore
    extra_providers: tuple[str, ...] = field(default=())
    # requests in flight at once, for throughput: OpenVINO streams (THROUGHPUT hint); for another
    # runtime that many sessions on as many Python threads (`runtime.concurrent`). 1: the latency path
    streams: int = 1

    def __post_init__(self):
        try:
            object.__setattr__(self, "device", Device(self.device))
        except ValueError:
            raise ArtifactError(f"unknown device {self.device!r}; use {' or '.join(Device)}") from None
        if self.streams < 1:
            raise ArtifactError(f"streams must be at least 1, got {self.streams}")

    @property
    def num_threads(self) -> int:
        return self.threads or available_cores()


def available_cores() -> int:
    """Cores this process may run on (its affinity mask: a container's or taskset's share, not the
    host's total). More threads than that only fight over the same cores, spinning."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Runner(Protocol):
    name: str  # variant name
    input_shape: tuple[int, int, int]  # (C, H, W), or (H, W, C) for an NHWC model; batch is free
    settings: dict[str, Any]  # what the figures were measured with

    def run(self, x: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: object) -> None: ...


class Closing:
    """What makes a runner a context manager: `with open_runner(...) as r:` closes it, come what may."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RunnerFactory = Callable[[Path, ModelCard, str, RunOptions], Runner]


def split_batch(x: np.ndarray, parts: int) -> list[np.ndarray]:
    """`x` cut into at most `parts` runs of images, one per request in flight, as even as can be
    (fewer when there are fewer images than parts: no request runs an empty batch)."""
    return [p for p in np.array_split(x, min(parts, len(x))) if len(p)] if len(x) else [x]


def check_input(x: np.ndarray, shape: tuple[int, int, int], batch: int | None = None,
                dtype: type = np.float32) -> np.ndarray:
    """Refuse anything but the model's input: `dtype` (float32, or uint8 for a model that takes raw
    pixels), shape (N, *shape) in its layout ((C, H, W) or (H, W, C), from the card's preprocessing
    or the graph), and N = `batch` if fixed."""
    want = np.dtype(dtype)
    if not isinstance(x, np.ndarray) or x.dtype != want:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise InputError(f"input must be a {want} array, got {got}")
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape) or x.shape[0] < 1:
        raise InputError(f"input must have shape (N, {', '.join(map(str, shape))}) with N >= 1, "
                         f"got {tuple(x.shape)}")
    if batch is not None and x.shape[0] != batch:
        raise InputError(f"this variant was exported with a fixed batch of {batch}, got a batch of "
                         f"{x.shape[0]}; send batches of {batch} or re-export with --batch dynamic")
    return np.ascontiguousarray(x)
