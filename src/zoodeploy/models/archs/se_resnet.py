"""SE-ResNet (Hu, Shen, Sun 2018): ResNet bottlenecks recalibrated by squeeze-and-excitation."""

from __future__ import annotations

import torch
from torchvision.models.resnet import Bottleneck, ResNet, conv1x1, conv3x3
from torchvision.ops import SqueezeExcitation

from zoodeploy.models.spec import ModelSpec, register_model

SE_REDUCTION = 16


class SEBottleneck(Bottleneck):
    """torchvision's bottleneck with an SE block on the residual branch, before the addition.

    As in the authors' Caffe models (and the original ResNet), the stride sits on the first
    1x1 conv rather than on the 3x3 conv as in torchvision's ResNet v1.5: this is what the
    paper's 3.87 GFLOPs counts.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, *args, **kwargs):
        super().__init__(inplanes, planes, stride, *args, **kwargs)
        width = self.conv1.out_channels
        self.conv1 = conv1x1(inplanes, width, stride)
        self.conv2 = conv3x3(width, width, 1, self.conv2.groups, self.conv2.dilation[0])
        channels = planes * self.expansion
        self.se = SqueezeExcitation(channels, channels // SE_REDUCTION)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


def se_resnet50(*, num_classes: int = 1000) -> ResNet:
    return ResNet(SEBottleneck, [3, 4, 6, 3], num_classes=num_classes)


register_model(ModelSpec(
    name="se_resnet50", family="SENet", year=2018, paper="Squeeze-and-Excitation Networks",
    builder=se_resnet50, head="fc", min_input_size=1,
    published_params=28_100_000, published_macs=3_870_000_000,
    figures_source="Hu et al. 2018: 3.87 GFLOPs, which count multiply-adds (Table 2), "
                   "and 28.1M parameters at reduction 16 (reduction-ratio ablation table)",
))
