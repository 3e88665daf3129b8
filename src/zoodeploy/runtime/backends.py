"""The runners behind `open_runner`: each runner module adds itself to `RUNTIMES` (runtime/base.py)
when imported, and `_load_backends` imports them on first use.

Adding a runtime is one runner file under `runtime/` (registered with `@RUNTIMES.register(name)`)
and one import line in `_load_backends` below.
"""

from __future__ import annotations

from pathlib import Path

from zoodeploy.card import ModelCard, load_card
from zoodeploy.errors import MissingDependencyError
from zoodeploy.runtime.base import EAGER, RUNTIMES, Runner, RunnerFactory, RunOptions


def open_runner(artifact: str | Path, variant: str, options: RunOptions | None = None,
                card: ModelCard | None = None) -> Runner:
    """A Runner for `variant` of the artifact ("eager" = PyTorch, "selected" = the card's pick)."""
    card = card or load_card(artifact)
    options = options or RunOptions()
    _load_backends()
    if variant == EAGER:
        return RUNTIMES.get("torch")(Path(artifact), card, EAGER, options)
    v = card.variant(variant)
    return RUNTIMES.get(v.runtime)(Path(artifact), card, v.name, options)


def _load_backends() -> None:
    from zoodeploy.runtime import ort  # noqa: F401  (they register themselves)
    try:  # PyTorch is not needed to run ONNX variants: a serving image may leave it out
        from zoodeploy.runtime import torch_runner  # noqa: F401
    except ImportError:
        pass
    try:
        from zoodeploy.runtime import tensorrt, torch_tensorrt  # noqa: F401
    except ImportError:
        pass
    if "openvino" not in RUNTIMES:  # absent or broken: ONNX variants still run on ONNX Runtime
        try:
            from zoodeploy.runtime import openvino  # noqa: F401
        except (ImportError, OSError, RuntimeError) as e:
            RUNTIMES.add("openvino", _unavailable("OpenVINO", e, "pip install 'openvino>=2024.4' (a zoodeploy "
                                                  "dependency); the source ONNX variants run on ONNX Runtime"))


def _unavailable(what: str, error: BaseException, install: str) -> RunnerFactory:
    """A runtime whose package does not import: opening one of its variants says so in one line."""
    why = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]

    def refuse(artifact: Path, card: ModelCard, variant: str, options: RunOptions) -> Runner:
        raise MissingDependencyError(f"{what} (variant {variant!r}; import failed: {why})", install)
    return refuse
