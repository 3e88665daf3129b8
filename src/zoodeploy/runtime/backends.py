"""The runners behind `open_runner`, by runtime name.

`RUNTIMES` names, for each runtime, the runner module's factory as "module:function" (as the pass
registry names its passes); the module is imported only when a variant of that runtime is opened,
so running ONNX variants imports no PyTorch, OpenVINO or TensorRT (a serving image may leave them
out, and a command or server that needs none starts seconds sooner). A runtime whose package does
not import is refused in one line naming what to install; the other runtimes still run.

Adding a runtime is one runner file under `runtime/` with a factory
`(artifact, card, variant, options) -> Runner`, and one `RUNTIMES.add(...)` line below.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from zoodeploy.artifact import Artifact
from zoodeploy.errors import MissingDependencyError, first_line
from zoodeploy.registry import Registry
from zoodeploy.runtime.base import EAGER, Runner, RunnerFactory, RunOptions


RUNTIMES: Registry[str] = Registry("runtime")
RUNTIMES.add("onnxruntime", "zoodeploy.runtime.ort:open_variant")
RUNTIMES.add("openvino", "zoodeploy.runtime.openvino:open_variant")
RUNTIMES.add("torch", "zoodeploy.runtime.torch_runner:TorchRunner")  # the eager baseline
RUNTIMES.add("torch-export", "zoodeploy.runtime.torch_runner:ProgramRunner")
RUNTIMES.add("tensorrt", "zoodeploy.runtime.tensorrt:TensorRTRunner")
RUNTIMES.add("torch-tensorrt", "zoodeploy.runtime.torch_tensorrt:TorchTensorRTRunner")

# runtimes whose runner keeps `RunOptions.streams` requests in flight itself (OpenVINO's streams);
# any other runtime gets that many runners on as many threads (runtime.concurrent)
OWN_STREAMS = frozenset({"openvino"})

# what to install when a runtime's module does not import (the GPU runners import their GPU
# packages themselves, when opened, and name them)
INSTALL = {
    "openvino": ("OpenVINO", "pip install 'openvino>=2024.4' (a zoodeploy dependency); the source ONNX "
                             "variants run on ONNX Runtime"),
    "torch": ("PyTorch", "pip install torch (the eager baseline; ONNX variants run without it)"),
    "torch-export": ("PyTorch", "pip install torch (ONNX variants run without it)"),
}


def open_runner(artifact: Artifact | str | Path, variant: str, options: RunOptions | None = None) -> Runner:
    """A Runner for `variant` of the artifact ("eager" = PyTorch, "selected" = the card's pick), to
    use as a context manager. A factory gets the handle: the card as read once, files hashed once.
    With `options.streams` > 1, `run` keeps that many requests in flight (throughput, not latency)."""
    art = Artifact.of(artifact)
    options = options or RunOptions()
    if variant == EAGER:
        return runner_factory("torch", EAGER)(art, art.card, EAGER, options)
    v = art.resolve_variant(variant)
    factory = runner_factory(str(v.runtime), v.name)
    if options.streams > 1 and str(v.runtime) not in OWN_STREAMS:
        from zoodeploy.runtime.concurrent import ConcurrentRunner
        return ConcurrentRunner(lambda one: factory(art, art.card, v.name, one), options)
    return factory(art, art.card, v.name, options)


def runner_factory(runtime: str, variant: str) -> RunnerFactory:
    """The factory that opens `runtime`'s variants, its module imported now."""
    module, _, attr = RUNTIMES.get(runtime).partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, OSError, RuntimeError) as e:  # absent, or a broken native library
        what, install = INSTALL.get(runtime, (runtime, "pip install 'zoodeploy[gpu]'"))
        raise MissingDependencyError(f"{what} (variant {variant!r}; import failed: {first_line(e, 200)})",
                                     install) from None
