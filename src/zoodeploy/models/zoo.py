"""The zoo: its architectures looked up by name (`get_spec`, `list_models`) and built (`build_model`).

The entries live one file each under `models/archs/` and register a `ModelSpec` (models/spec.py)
when imported; `models/archs/__init__.py` imports them, one line each, in zoo order. Adding an
architecture is one file there plus its line in that `__init__.py`.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

# the spec and head names are the zoo's public ones too: kept importable from here
from zoodeploy.models.spec import MODELS, ModelSpec, head_module, register_model, replace_head

__all__ = ["MODELS", "ModelSpec", "build_model", "get_spec", "head_module", "list_models", "register_model",
           "replace_head"]


def _load_entries() -> None:
    # the entries register themselves on import
    from zoodeploy.models import archs  # noqa: F401


def get_spec(name: str) -> ModelSpec:
    _load_entries()
    return MODELS.get(name)


def list_models(include: str | Iterable[str] | None = None,
                exclude: str | Iterable[str] | None = None) -> list[str]:
    _load_entries()
    return MODELS.names(include, exclude)


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def build_model(name: str, *, num_classes: int = 1000, weights: str | None = None,
                progress: bool = True) -> nn.Module:
    """Build `name` for `num_classes`, randomly initialised or with `weights`.

    weights: None (random), "imagenet" (torchvision's weight enum; the head is replaced
    when num_classes != 1000) or a path to a checkpoint / state_dict for this class count.
    """
    spec = get_spec(name)
    if weights is None:
        return spec.builder(num_classes=num_classes)
    from zoodeploy.models.weights import load_weights
    return load_weights(spec, weights, num_classes=num_classes, progress=progress)
