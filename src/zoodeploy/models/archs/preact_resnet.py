"""Pre-activation ResNet (He, Zhang, Ren, Sun 2016): "Identity Mappings in Deep Residual Networks".

Each residual unit is BN-ReLU-conv (Fig. 4e of the paper), so the shortcut path carries the
signal from unit to unit untouched. Following the authors' released code, the first unit of a
stage, whose shortcut is a projection, pre-activates once for both paths; the first unit after
a stand-alone conv1 + BN + ReLU (the ImageNet stem) skips its own pre-activation; an extra
BN-ReLU follows the last addition, before pooling (Sec. 4 of the paper).
"""

from __future__ import annotations

import torch
from torch import nn

from zoodeploy.models.spec import ModelSpec, register_model
from zoodeploy.preprocess import Preprocessing


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class PreActBlock(nn.Module):
    """Two 3x3 convs, each after BN-ReLU (ResNet-18/34's unit)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, preact: bool = True):
        super().__init__()
        out_channels = planes * self.expansion
        self.preact = _bn_relu(in_channels) if preact else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn_relu2 = _bn_relu(planes)
        self.conv2 = nn.Conv2d(planes, out_channels, 3, 1, 1, bias=False)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.bn_relu2(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.preact(x)
        # a projection shortcut sees the pre-activated input, an identity one the raw sum
        shortcut = x if self.shortcut is None else self.shortcut(act)
        return self.residual(act) + shortcut


class PreActBottleneck(PreActBlock):
    """1x1 reduce, 3x3, 1x1 expand (x4), each after BN-ReLU.

    The stride sits on the first 1x1 conv, as in the original ResNet and the authors'
    pre-activation code (torchvision's v1.5 moves it to the 3x3).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, preact: bool = True):
        nn.Module.__init__(self)
        out_channels = planes * self.expansion
        self.preact = _bn_relu(in_channels) if preact else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, stride, bias=False)
        self.bn_relu2 = _bn_relu(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn_relu3 = _bn_relu(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.bn_relu3(self.conv2(self.bn_relu2(self.conv1(x)))))


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)


class PreActResNet(nn.Module):
    """A stem, stages of pre-activation units, a final BN-ReLU, global pooling and the FC.

    `imagenet_stem`: conv7x7/2 + BN + ReLU + maxpool3x3/2 and stages of 64/128/256/512 planes;
    otherwise the CIFAR layout: one 3x3 conv (no BN: the first unit pre-activates it) and
    stages of 16/32/64 planes.
    """

    def __init__(self, block: type[PreActBlock], layers: list[int], num_classes: int = 1000,
                 imagenet_stem: bool = True):
        super().__init__()
        if imagenet_stem:
            planes = (64, 128, 256, 512)
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), *_bn_relu(64),
                                      nn.MaxPool2d(3, 2, 1))
        else:
            planes = (16, 32, 64)
            self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        in_channels = planes[0]
        stages = []
        for i, (width, count) in enumerate(zip(planes, layers)):
            units = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                # the ImageNet stem ends in BN-ReLU already: its first unit does not repeat it
                preact = not (imagenet_stem and i == 0 and j == 0)
                units.append(block(in_channels, width, stride, preact))
                in_channels = width * block.expansion
            stages.append(nn.Sequential(*units))
        self.layer1, self.layer2, self.layer3 = stages[:3]
        self.layer4 = stages[3] if len(stages) > 3 else nn.Identity()
        self.final_act = _bn_relu(in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(self.final_act(x)), 1))


def _init(model: nn.Module) -> None:
    # He initialisation (fan_out), as in the authors' code
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def preact_resnet18(*, num_classes: int = 1000) -> PreActResNet:
    return PreActResNet(PreActBlock, [2, 2, 2, 2], num_classes=num_classes)


def preact_resnet50(*, num_classes: int = 1000) -> PreActResNet:
    return PreActResNet(PreActBottleneck, [3, 4, 6, 3], num_classes=num_classes)


def preact_resnet164(*, num_classes: int = 10) -> PreActResNet:
    """The paper's CIFAR ResNet-164: 3 stages of 18 bottlenecks (9 * 18 + 2 = 164 layers)."""
    return PreActResNet(PreActBottleneck, [18, 18, 18], num_classes=num_classes,
                        imagenet_stem=False)


_PAPER = "Identity Mappings in Deep Residual Networks"
_CIFAR = Preprocessing(size=32, resize=32)
# the paper gives no ImageNet figures for 18/50 layers; pre-activation moves BN and ReLU but
# keeps every conv and the FC of the original networks, so these are the original ResNet
# paper's (Table 1: 1.8 and 3.8 GFLOPs, which count multiply-adds) and the widely quoted
# parameter counts of those networks (11.7M, 25.6M: torchvision's ResNet-18/50 meta)
_ORIGINAL = ("He et al. 2016, 'Deep Residual Learning', Table 1 ({} GFLOPs = multiply-adds); "
             "{}M parameters as quoted for ResNet-{} (torchvision meta); pre-activation "
             "keeps every conv and FC of the original")

register_model(ModelSpec(
    name="preact_resnet18", family="ResNet", year=2016, paper=_PAPER,
    builder=preact_resnet18, head="fc", min_input_size=1,
    preprocessing=Preprocessing(size=224, resize=256),
    published_params=11_700_000, published_macs=1_800_000_000,
    figures_source=_ORIGINAL.format(1.8, 11.7, 18), train_epochs=16,
))
register_model(ModelSpec(
    name="preact_resnet50", family="ResNet", year=2016, paper=_PAPER,
    builder=preact_resnet50, head="fc", min_input_size=1,
    preprocessing=Preprocessing(size=224, resize=256),
    published_params=25_600_000, published_macs=3_800_000_000,
    figures_source=_ORIGINAL.format(3.8, 25.6, 50),
))
register_model(ModelSpec(
    name="preact_resnet164", family="ResNet", year=2016, paper=_PAPER,
    builder=preact_resnet164, head="fc", input_size=32, min_input_size=1,
    preprocessing=_CIFAR, published_params=1_700_000, figures_num_classes=10,
    figures_source="He et al. 2016, 'Identity Mappings', Table 3 (ResNet-164, CIFAR-10: 1.7M)",
))
