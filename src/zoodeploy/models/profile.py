"""Measure a built model: parameters, multiply-accumulates and activation memory.

Everything is measured on one eval-mode forward pass at batch 1 through forward hooks on the
leaf modules, so the figures describe the graph that is exported and deployed. Auxiliary
classifiers run only in training: their parameters are counted apart (`aux_params`), as
torchvision's tables and the papers count the inference model. The model may live on the
`meta` device: shapes are all the hooks need, so profiling VGG-19 costs no memory and no time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from zoodeploy.errors import ZoodeployError
from zoodeploy.models.zoo import ModelSpec, get_spec


@dataclass(frozen=True)
class LayerRow:
    """One call of one leaf module, as in the CS231n notes' layer tables."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelProfile:
    """Figures per image (batch 1, float32 activations) at `input_size`.

    `params` and `trainable_params` are those of the deployed (eval, exported) model;
    `aux_params` those of the auxiliary classifiers that serve training only (0 for most
    nets). `activation_bytes` sums every leaf module's output, an upper bound on what a
    runtime keeps alive (in-place ReLUs and freed buffers share memory).
    """

    input_size: int
    params: int
    trainable_params: int
    aux_params: int
    macs: int
    activation_bytes: int
    layers: tuple[LayerRow, ...] = field(default=())

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("input_size", "params", "trainable_params",
                                            "aux_params", "macs", "activation_bytes")}
        if self.layers:
            d["layers"] = [{"name": r.name, "type": r.type, "output_shape": list(r.output_shape),
                            "params": r.params, "macs": r.macs} for r in self.layers]
        return d


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one Conv2d or Linear call (0 for any other module)."""
    if isinstance(module, nn.Conv2d):
        # each output element sums over in_channels/groups input maps times the kernel
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for o in output for t in _tensors(o)]
    return []


def _own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def profile_model(model: nn.Module, input_size: int, *, layers: bool = False,
                  in_channels: int = 3, aux: Iterable[str] = ()) -> ModelProfile:
    """Profile `model` on one (1, in_channels, input_size, input_size) input.

    `aux` names the submodules that serve training only (auxiliary classifiers): their
    parameters go to `aux_params`, not `params`. The model is left in the mode it came in;
    nothing is printed.
    """
    rows: list[LayerRow] = []
    activations: list[int] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module, _inputs, output):
        out = _tensors(output)
        if out and next(module.children(), None) is None:  # leaves only: no double counting
            rows.append(LayerRow(names[module], type(module).__name__, tuple(out[0].shape),
                                 _own_params(module), layer_macs(module, out[0])))
            activations.append(sum(t.numel() * t.element_size() for t in out))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, input_size, input_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    training_only = {id(p) for name in aux for p in model.get_submodule(name).parameters()}
    deployed = [p for p in model.parameters() if id(p) not in training_only]
    return ModelProfile(
        input_size=input_size,
        params=sum(p.numel() for p in deployed),
        trainable_params=sum(p.numel() for p in deployed if p.requires_grad),
        aux_params=sum(p.numel() for p in model.parameters() if id(p) in training_only),
        macs=sum(r.macs for r in rows),
        activation_bytes=sum(activations),
        layers=tuple(rows) if layers else (),
    )


def aux_modules(spec: ModelSpec) -> tuple[str, ...]:
    """The auxiliary classifiers of `spec`: the top-level module of each of its aux heads."""
    return tuple(dict.fromkeys(head.split(".")[0] for head in spec.aux_heads))


def check_input_size(name: str, input_size: int) -> None:
    """Refuse an input smaller than the architecture can take, in one line."""
    spec = get_spec(name)
    if input_size < spec.min_input_size:
        raise ZoodeployError(f"{name} needs an input of at least {spec.min_input_size}x"
                             f"{spec.min_input_size} pixels, got {input_size}")


def profile_arch(name: str, *, input_size: int | None = None, num_classes: int | None = None,
                 layers: bool = False) -> ModelProfile:
    """Build zoo model `name` without allocating weights (meta device) and profile it.

    Defaults: the architecture's own input size and the class count its published figures
    are for, so the result compares directly with `published_params` / `published_macs`. The
    spec's auxiliary classifiers are counted in `aux_params`.
    """
    spec = get_spec(name)
    input_size = spec.input_size if input_size is None else input_size
    check_input_size(name, input_size)
    with torch.device("meta"):
        model = spec.builder(num_classes=num_classes or spec.figures_num_classes)
    return profile_model(model, input_size, layers=layers, aux=aux_modules(spec))
