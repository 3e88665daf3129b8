"""Network in Network (Lin, Chen, Yan 2013): mlpconv blocks and a global-average-pool head."""

from __future__ import annotations

import torch
from torch import nn

from zoodeploy.models.spec import ModelSpec, register_model

# (out channels, kernel, stride, padding) of each block's spatial conv; two 1x1 convs follow
_IMAGENET_BLOCKS = ((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1))


def mlpconv(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int,
            last_channels: int | None = None) -> list[nn.Module]:
    """A conv followed by two 1x1 convs (the paper's micro MLP shared across positions)."""
    last = out_channels if last_channels is None else last_channels
    return [
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, last, 1),
    ]


class NIN(nn.Module):
    """The ImageNet NIN of the authors' Caffe model: 4 mlpconv blocks, 7.6M parameters.

    Blocks 1-3 end in ReLU and 3x3/2 max pooling (dropout 0.5 after the third); block 4 is
    conv3x3x1024, 1x1x1024 and a 1x1 conv to `num_classes` maps that global average pooling
    turns into logits: no fully connected layer, so the head is that last 1x1 conv. The Caffe
    model puts a ReLU on the class maps as well; it is left out here because a class whose
    map starts all-negative would never get a gradient when fine-tuning a fresh head.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for i, (out_channels, kernel, stride, padding) in enumerate(_IMAGENET_BLOCKS):
            layers += mlpconv(in_channels, out_channels, kernel, stride, padding)
            # ceil mode, as Caffe pools, keeps 54 -> 27 -> 13 -> 6 at 224 input
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, ceil_mode=True)]
            in_channels = out_channels
        layers.append(nn.Dropout(dropout))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(*mlpconv(in_channels, 1024, 3, 1, 1, num_classes))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.classifier(self.features(x))), 1)


def nin(*, num_classes: int = 1000) -> NIN:
    return NIN(num_classes=num_classes)


register_model(ModelSpec(
    name="nin", family="NIN", year=2013, paper="Network In Network",
    builder=nin, head="classifier.4", min_input_size=39,
    # no BatchNorm: at 1e-2 every ReLU dies (10.0% test); 3e-4 for 30 epochs: 96.9%
    train_lr=3e-4, train_epochs=30,
    figures_source="Lin et al. 2013 report ImageNet results without parameter or operation "
                   "counts; layout of the authors' Caffe ImageNet model (nin_imagenet)",
))
