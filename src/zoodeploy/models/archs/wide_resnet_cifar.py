"""Wide Residual Networks (Zagoruyko, Komodakis 2016) in the paper's own CIFAR form.

WRN-d-k: a 3x3 conv with 16 filters, three groups of (d-4)/6 pre-activation basic units
(BN-ReLU-conv3x3, twice) with 16k, 32k and 64k filters on 32x32, 16x16 and 8x8 maps, a final
BN-ReLU, global average pooling and the FC. Where a group changes the shape, a 1x1 conv
projects the pre-activated input (the authors' code). torchvision's wide_resnet50_2 is the
ImageNet bottleneck variant from the same paper; this is the basic-block CIFAR one of its
tables. Dropout between the two convs (the paper's "-dropout" rows) is left out: the 36.5M
of WRN-28-10 does not depend on it.
"""

from __future__ import annotations

import torch
from torch import nn

from zoodeploy.models.archs.preact_resnet import PreActBlock, _bn_relu, _init
from zoodeploy.models.archs.resnet_cifar import CIFAR_PREPROCESSING
from zoodeploy.models.spec import ModelSpec, register_model


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int = 10):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        in_channels, groups = 16, []
        for i, width in enumerate((16 * widen, 32 * widen, 64 * widen)):
            units = []
            for j in range(n):
                units.append(PreActBlock(in_channels, width, 2 if i > 0 and j == 0 else 1))
                in_channels = width
            groups.append(nn.Sequential(*units))
        self.layer1, self.layer2, self.layer3 = groups
        self.final_act = _bn_relu(in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(self.final_act(x)), 1))


def wrn28_10(*, num_classes: int = 10) -> WideResNet:
    return WideResNet(28, 10, num_classes=num_classes)


register_model(ModelSpec(
    name="wrn28_10", family="WideResNet", year=2016, paper="Wide Residual Networks",
    builder=wrn28_10, head="fc", input_size=32, min_input_size=1,
    preprocessing=CIFAR_PREPROCESSING, published_params=36_500_000, figures_num_classes=10,
    figures_source="Zagoruyko & Komodakis 2016, Tables 4 and 5 (WRN-28-10 on CIFAR: 36.5M)",
    # 5.2 GFLOPs a 32 px image: an epoch of digits is ~12 min on one core, so 12 epochs would take
    # hours on the 2-core machine; the wide net reaches its digits target in a few
    train_epochs=4,
))
