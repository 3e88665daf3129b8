"""Inception-v4 and Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke, Alemi 2016).

"Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning". Layer by
layer as in the reference implementation that produced the published checkpoints
(TF-slim's inception_v4.py and inception_resnet_v2.py): every conv is conv (no bias) + BN
(eps 1e-3) + ReLU; "valid" convs and poolings have no padding. Inception-v4 is exactly the
paper's Figs. 3-9; for Inception-ResNet-v2 the reference departs from the paper's figures
(whose channel counts do not add up), and its counts are the ones quoted: the stem is
Inception v3's (conv 1a-4a, two poolings) followed by Mixed_5b, and the residual scales are
0.17 / 0.1 / 0.2 for the 35x35 / 17x17 / 8x8 blocks (Sec. 3.3 scales residuals by 0.1-0.3).
"""

from __future__ import annotations

import torch
from torch import nn

from zoodeploy.models.spec import ModelSpec, register_model
from zoodeploy.preprocess import Preprocessing


class Conv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel, stride: int = 1,
                 padding=0):
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel, stride, padding,
                                   bias=False),
                         nn.BatchNorm2d(out_channels, eps=1e-3), nn.ReLU(inplace=True))


def _1x7(i: int, o: int) -> Conv:
    return Conv(i, o, (1, 7), padding=(0, 3))


def _7x1(i: int, o: int) -> Conv:
    return Conv(i, o, (7, 1), padding=(3, 0))


def _1x3(i: int, o: int) -> Conv:
    return Conv(i, o, (1, 3), padding=(0, 1))


def _3x1(i: int, o: int) -> Conv:
    return Conv(i, o, (3, 1), padding=(1, 0))


def _avgpool_1x1(i: int, o: int) -> nn.Sequential:
    # 3x3/1 average pooling (padding not counted, as TF's SAME pooling) then a 1x1 conv
    return nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), Conv(i, o, 1))


class Branches(nn.Module):
    """Parallel branches concatenated along channels (an Inception module)."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


class SplitTail(nn.Module):
    """A trunk whose output feeds two parallel convs, concatenated (Inception-C's 1x3 / 3x1)."""

    def __init__(self, trunk: nn.Module, a: nn.Module, b: nn.Module):
        super().__init__()
        self.trunk, self.a, self.b = trunk, a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk(x)
        return torch.cat([self.a(t), self.b(t)], 1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2)  # 3x3/2 valid


# --- Inception-v4 --------------------------------------------------------------------------

def _v4_stem() -> nn.Sequential:
    """Fig. 3: 299x299x3 -> 35x35x384."""
    return nn.Sequential(
        Conv(3, 32, 3, 2), Conv(32, 32, 3), Conv(32, 64, 3, padding=1),
        Branches(_pool(), Conv(64, 96, 3, 2)),  # 160
        Branches(nn.Sequential(Conv(160, 64, 1), Conv(64, 96, 3)),
                 nn.Sequential(Conv(160, 64, 1), _7x1(64, 64), _1x7(64, 64), Conv(64, 96, 3))),
        Branches(Conv(192, 192, 3, 2), _pool()),  # 384
    )


def _inception_a() -> Branches:
    """Fig. 4, 35x35x384."""
    return Branches(
        Conv(384, 96, 1),
        nn.Sequential(Conv(384, 64, 1), Conv(64, 96, 3, padding=1)),
        nn.Sequential(Conv(384, 64, 1), Conv(64, 96, 3, padding=1), Conv(96, 96, 3, padding=1)),
        _avgpool_1x1(384, 96),
    )


def _reduction_a(i: int, k: int, l: int, m: int, n: int) -> Branches:
    """Fig. 7 with the paper's k, l, m, n (Table 1); 35x35 -> 17x17."""
    return Branches(
        Conv(i, n, 3, 2),
        nn.Sequential(Conv(i, k, 1), Conv(k, l, 3, padding=1), Conv(l, m, 3, 2)),
        _pool(),
    )


def _inception_b() -> Branches:
    """Fig. 5, 17x17x1024."""
    return Branches(
        Conv(1024, 384, 1),
        nn.Sequential(Conv(1024, 192, 1), _1x7(192, 224), _7x1(224, 256)),
        nn.Sequential(Conv(1024, 192, 1), _7x1(192, 192), _1x7(192, 224), _7x1(224, 224),
                      _1x7(224, 256)),
        _avgpool_1x1(1024, 128),
    )


def _reduction_b_v4() -> Branches:
    """Fig. 8; 17x17x1024 -> 8x8x1536."""
    return Branches(
        nn.Sequential(Conv(1024, 192, 1), Conv(192, 192, 3, 2)),
        nn.Sequential(Conv(1024, 256, 1), _1x7(256, 256), _7x1(256, 320), Conv(320, 320, 3, 2)),
        _pool(),
    )


def _inception_c() -> Branches:
    """Fig. 6, 8x8x1536."""
    return Branches(
        Conv(1536, 256, 1),
        SplitTail(Conv(1536, 384, 1), _1x3(384, 256), _3x1(384, 256)),
        SplitTail(nn.Sequential(Conv(1536, 384, 1), _3x1(384, 448), _1x3(448, 512)),
                  _1x3(512, 256), _3x1(512, 256)),
        _avgpool_1x1(1536, 256),
    )


class Classifier(nn.Module):
    """Global average pooling, dropout (keep 0.8, Fig. 9) and the FC."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


class InceptionV4(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            _v4_stem(), *[_inception_a() for _ in range(4)],
            _reduction_a(384, 192, 224, 256, 384),  # Table 1, Inception-v4
            *[_inception_b() for _ in range(7)], _reduction_b_v4(),
            *[_inception_c() for _ in range(3)],
        )
        self.classifier = Classifier(1536, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# --- Inception-ResNet-v2 -------------------------------------------------------------------

class Residual(nn.Module):
    """x + scale * up(branches(x)), then ReLU: `up` is a linear 1x1 conv (bias, no BN)."""

    def __init__(self, channels: int, branches: Branches, width: int, scale: float,
                 activate: bool = True):
        super().__init__()
        self.branches = branches
        self.up = nn.Conv2d(width, channels, 1)
        self.scale = scale
        self.relu = nn.ReLU(inplace=True) if activate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.scale * self.up(self.branches(x)))


def _block35() -> Residual:
    """Inception-ResNet-A, 35x35x320."""
    return Residual(320, Branches(
        Conv(320, 32, 1),
        nn.Sequential(Conv(320, 32, 1), Conv(32, 32, 3, padding=1)),
        nn.Sequential(Conv(320, 32, 1), Conv(32, 48, 3, padding=1), Conv(48, 64, 3, padding=1)),
    ), 128, 0.17)


def _block17() -> Residual:
    """Inception-ResNet-B, 17x17x1088."""
    return Residual(1088, Branches(
        Conv(1088, 192, 1),
        nn.Sequential(Conv(1088, 128, 1), _1x7(128, 160), _7x1(160, 192)),
    ), 384, 0.1)


def _block8(activate: bool = True, scale: float = 0.2) -> Residual:
    """Inception-ResNet-C, 8x8x2080."""
    return Residual(2080, Branches(
        Conv(2080, 192, 1),
        nn.Sequential(Conv(2080, 192, 1), _1x3(192, 224), _3x1(224, 256)),
    ), 448, scale, activate)


class InceptionResNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        stem = nn.Sequential(
            Conv(3, 32, 3, 2), Conv(32, 32, 3), Conv(32, 64, 3, padding=1), _pool(),
            Conv(64, 80, 1), Conv(80, 192, 3), _pool(),
            Branches(  # Mixed_5b: 35x35x320
                Conv(192, 96, 1),
                nn.Sequential(Conv(192, 48, 1), Conv(48, 64, 5, padding=2)),
                nn.Sequential(Conv(192, 64, 1), Conv(64, 96, 3, padding=1),
                              Conv(96, 96, 3, padding=1)),
                _avgpool_1x1(192, 64),
            ),
        )
        reduction_b = Branches(  # Mixed_7a: 17x17x1088 -> 8x8x2080
            nn.Sequential(Conv(1088, 256, 1), Conv(256, 384, 3, 2)),
            nn.Sequential(Conv(1088, 256, 1), Conv(256, 288, 3, 2)),
            nn.Sequential(Conv(1088, 256, 1), Conv(256, 288, 3, padding=1), Conv(288, 320, 3, 2)),
            _pool(),
        )
        self.features = nn.Sequential(
            stem, *[_block35() for _ in range(10)],
            _reduction_a(320, 256, 256, 384, 384),  # Table 1, Inception-ResNet-v2
            *[_block17() for _ in range(20)], reduction_b,
            *[_block8() for _ in range(9)], _block8(activate=False, scale=1.0),
            Conv(2080, 1536, 1),
        )
        self.classifier = Classifier(1536, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _init(model: nn.Module) -> None:
    # truncated normal (std 0.1), as TF-slim's arg scopes
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.1, a=-0.2, b=0.2)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def inception_v4(*, num_classes: int = 1000) -> InceptionV4:
    return InceptionV4(num_classes=num_classes)


def inception_resnet_v2(*, num_classes: int = 1000) -> InceptionResNetV2:
    return InceptionResNetV2(num_classes=num_classes)


_PAPER = ("Inception-v4, Inception-ResNet and the Impact of Residual Connections on "
          "Learning")
# Google's checkpoints expect [-1, 1] inputs; 299 cropped from 342 (crop fraction 0.875)
_PREPROCESSING = Preprocessing(size=299, resize=342, mean=(0.5, 0.5, 0.5),
                               std=(0.5, 0.5, 0.5), interpolation="bicubic")
_SOURCE = ("the paper gives no parameter count; {}M is the count of the reference TF-slim "
           "checkpoint ({}), as quoted by the TF-slim model table and timm's port")

register_model(ModelSpec(
    name="inception_v4", family="Inception", year=2016, paper=_PAPER, builder=inception_v4,
    head="classifier.fc", input_size=299, min_input_size=75, preprocessing=_PREPROCESSING,
    # digits at 75 px, peak lr 1e-2: test 93.31% after 12 epochs, 93.59% after 20, 95.26% (342/359)
    # after 30 (880 s on 2 cores; validation swings through the peak, settles from epoch 24);
    # 91 px 84.40% and lr 3e-3 88.86% at 12-16 epochs
    train_epochs=30, published_params=42_700_000, figures_source=_SOURCE.format(42.7, "inception_v4"),
))
register_model(ModelSpec(
    name="inception_resnet_v2", family="Inception", year=2016, paper=_PAPER,
    builder=inception_resnet_v2, head="classifier.fc", input_size=299, min_input_size=75,
    preprocessing=_PREPROCESSING, published_params=55_800_000,
    figures_source=_SOURCE.format(55.8, "inception_resnet_v2"),
))
