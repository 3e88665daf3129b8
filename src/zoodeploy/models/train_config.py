"""What `zoodeploy train` is asked to do (`TrainConfig`, `Freeze`), without importing torch.

Kept apart from models/train.py (the training loop, which needs torch) so that the CLI can declare
its options, and refuse a bad one, in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from zoodeploy.errors import ZoodeployError


class Freeze(str, Enum):
    none = "none"  # fine-tune everything
    features = "features"  # train only the classifier head (small data, similar domain)


@dataclass
class TrainConfig:
    model: str
    data: str = "digits"
    image_size: int | None = None  # default: the entry's train_input_size for digits, else its input_size
    epochs: int | None = None  # default: the zoo entry's train_epochs
    batch_size: int = 64
    lr: float | None = None  # default: the zoo entry's train_lr
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    freeze: Freeze = Freeze.none
    weights: str | None = None  # None (from scratch), "imagenet" or a checkpoint path
    seed: int = 0
    augment: bool = True  # random shifts of up to 1/16 of the image: small data overfits without

    def __post_init__(self):
        from zoodeploy.models.zoo import get_spec  # the defaults are the entry's: the zoo needs torch
        self.freeze = Freeze(self.freeze)
        spec = get_spec(self.model)  # unknown names fail here, with suggestions
        if self.epochs is None:
            self.epochs = spec.train_epochs
        if self.lr is None:
            self.lr = spec.train_lr
        if self.image_size is None:
            self.image_size = (max(spec.train_input_size, spec.min_input_size) if self.data == "digits"
                               else spec.input_size)
        if self.image_size < spec.min_input_size:
            raise ZoodeployError(f"{self.model} needs an input of at least {spec.min_input_size}px, "
                                 f"got --input-size {self.image_size}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ZoodeployError("--epochs and --batch-size must be >= 1 and --lr > 0")
        if not 0 <= self.label_smoothing < 1:
            raise ZoodeployError("--label-smoothing must be in [0, 1)")
        if self.freeze is Freeze.features and self.weights is None:
            raise ZoodeployError("--freeze features trains only the head, which needs pretrained "
                                 "--weights (imagenet or a checkpoint path)")
