"""ZFNet (Zeiler & Fergus 2013): AlexNet with a smaller, denser first layer."""

from __future__ import annotations

import torch
from torch import nn

from zoodeploy.models.spec import ModelSpec, register_model


def _lrn() -> nn.LocalResponseNorm:
    # "contrast normalized across feature maps" (Fig. 3); the paper gives no constants, so
    # these are AlexNet's, whose pipeline ZFNet follows
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


class ZFNet(nn.Module):
    """The network of the paper's Fig. 3 for 224x224 input.

    Layer 1: 96 filters 7x7 stride 2 -> 110x110, 3x3 max pool stride 2 -> 55x55, LRN.
    Layer 2: 256 filters 5x5 stride 2 -> 26x26, pool -> 13x13, LRN. Layers 3-5: 384, 384, 256
    filters 3x3, the last pooled to 6x6. Then two 4096-unit layers with dropout 0.5.
    Pools use ceil mode to reproduce the paper's 55 and 13; adaptive pooling to 6x6 lets the
    classifier take smaller inputs.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, ceil_mode=True), _lrn(),
            nn.Conv2d(96, 256, 5, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, ceil_mode=True), _lrn(),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def zfnet(*, num_classes: int = 1000) -> ZFNet:
    return ZFNet(num_classes=num_classes)


register_model(ModelSpec(
    name="zfnet", family="ZFNet", year=2013,
    paper="Visualizing and Understanding Convolutional Networks",
    builder=zfnet, head="classifier.6", min_input_size=63,
    train_lr=3e-4,  # no BatchNorm: at 1e-2 every ReLU dies and it stays at chance
    figures_source="Zeiler & Fergus 2013 publish no parameter or operation count; "
                   "measured from Fig. 3's layout",
))
