"""What the zoo knows about one architecture (`ModelSpec`), the `MODELS` registry the entries add
themselves to, and the classifier head a spec names.

An entry (one file under `models/archs/`) imports this module and calls
`register_model(ModelSpec(...))`; `models/zoo.py` loads the entries and looks them up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from zoodeploy.models.facts import LIST_HINT
from zoodeploy.preprocess import Preprocessing
from zoodeploy.registry import Registry

MODELS: Registry[ModelSpec] = Registry("model", hint=LIST_HINT)


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one architecture.

    `builder(num_classes=N)` returns a randomly initialised model; builders of entries with a
    `weights_enum` also take torchvision's `weights=` and `progress=`. `head` is the dotted
    path of the final classifier layer (replaced for a new class count, trained alone with
    --freeze features). Published figures are per image at `input_size` with
    `figures_num_classes` classes (1000: ImageNet) for the eval-mode (inference) graph.
    """

    name: str
    family: str
    year: int
    paper: str
    builder: Callable[..., nn.Module]
    head: str
    input_size: int = 224
    min_input_size: int = 32
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    published_params: int | None = None
    published_macs: int | None = None
    figures_source: str = ""
    weights_enum: str | None = None  # e.g. "ResNet50_Weights.IMAGENET1K_V2"
    aux_loss_weight: float = 0.0  # weight of auxiliary classifier losses in training
    # `zoodeploy train`'s default epochs from scratch on a small data set such as digits: enough
    # for a big net to converge in minutes on 2 cores; tiny nets (LeNet-5) need more, cheaper ones
    train_epochs: int = 12
    # its peak learning rate (AdamW, one-cycle): 1e-2 suits the nets with BatchNorm; the ones
    # without (AlexNet, ZFNet, VGG, NiN, SqueezeNet) lose every ReLU to it and stay at chance
    train_lr: float = 1e-2
    # its default input on digits (8x8 images rendered up): 32 px, or more where 32 collapses the
    # feature map too early to learn (SqueezeNet is at 1x1 after its third pooling)
    train_input_size: int = 32
    # recompute BatchNorm statistics with the inference graph before each validation: for nets whose
    # training graph is another (FractalNet's drop-path runs one column, or some joins' inputs, per
    # batch), so the running averages training keeps describe graphs inference never runs
    recompute_batchnorm: bool = False
    aux_heads: tuple[str, ...] = ()  # final layers of the auxiliary classifiers (GoogLeNet)
    aux_min_input_size: int = 0  # smallest input the auxiliary classifiers take (train mode)
    figures_num_classes: int = 1000  # the class count the published figures are for

    def __post_init__(self):
        if self.min_input_size > self.input_size:
            raise ValueError(f"{self.name}: min_input_size above input_size")


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add an entry to the zoo (a duplicate name is an error); each file in models/archs/ calls it."""
    return MODELS.add(spec.name, spec)


def replace_head(model: nn.Module, spec: ModelSpec, num_classes: int) -> nn.Module:
    """Swap the final classifier layer (and any auxiliary ones) for fresh `num_classes` ones."""
    for path in (spec.head, *spec.aux_heads):
        _replace_layer(model, spec.name, path, num_classes)
    return model


def _replace_layer(model: nn.Module, name: str, path: str, num_classes: int) -> None:
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr) if not attr.isdigit() else parent[int(attr)]
    like = {"device": old.weight.device, "dtype": old.weight.dtype}  # e.g. a model on GPU
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, **like)
    elif isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding,
                        bias=old.bias is not None, **like)
    else:
        raise TypeError(f"{name}: head {path} is a {type(old).__name__}, "
                        "expected Linear or Conv2d")
    if attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)


def head_module(model: nn.Module, spec: ModelSpec) -> nn.Module:
    return model.get_submodule(spec.head)
