"""MobileNet v1 (Howard et al. 2017): a stack of depthwise-separable convolutions."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from zoodeploy.models.spec import ModelSpec, register_model

# (output channels, stride) of the 13 depthwise-separable layers of the paper's Table 1
_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _separable(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3x3 depthwise conv then 1x1 pointwise conv, each with batch norm and ReLU."""
    return nn.Sequential(
        Conv2dNormActivation(in_channels, in_channels, 3, stride, groups=in_channels),
        Conv2dNormActivation(in_channels, out_channels, 1),
    )


class MobileNetV1(nn.Module):
    """Width multiplier 1.0: a full 3x3/2 conv, 13 separable layers, global pool, FC."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers = [Conv2dNormActivation(3, 32, 3, stride=2)]
        in_channels = 32
        for out_channels, stride in _LAYERS:
            layers.append(_separable(in_channels, out_channels, stride))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenet_v1(*, num_classes: int = 1000) -> MobileNetV1:
    return MobileNetV1(num_classes=num_classes)


register_model(ModelSpec(
    name="mobilenet_v1", family="MobileNet", year=2017,
    paper="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
    builder=mobilenet_v1, head="classifier", min_input_size=1,
    published_params=4_200_000, published_macs=569_000_000,
    figures_source="Howard et al. 2017, Tables 6 and 8 (1.0 MobileNet-224: 4.2M "
                   "parameters, 569M mult-adds)",
))
