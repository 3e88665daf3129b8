"""NASNet-A Mobile (Zoph, Vasudevan, Shlens, Le 2018), the 4 @ 1056 network.

"Learning Transferable Architectures for Scalable Image Recognition": the searched NASNet-A
normal and reduction cells (Fig. 4) stacked as in Fig. 2 for ImageNet, laid out like the
reference implementation (TF-slim's nets/nasnet/nasnet.py, `build_nasnet_mobile`): a 3x3/2
conv stem and two reduction "stem cells", then three stacks of N = 4 normal cells with a
reduction cell between stacks; filters 44 / 88 / 176 (penultimate 1056 = 24 x 44, 6 states
of 176 concatenated).

A cell takes the two previous cells' outputs, h (the last) and p (the one before): h is
squeezed by ReLU-1x1 conv-BN to the cell's filters; p too, or, where p has twice h's spatial
size (the first cell after a reduction), by a factorized reduction (two 1x1 convs on the even
and on the odd pixels). Five combinations each add two ops applied to earlier states; the
states no combination used are concatenated. A separable op is (ReLU, depthwise KxK,
pointwise 1x1, BN) twice, the stride on the first. Paddings are symmetric ("same" shapes);
TF's SAME pads stride-2 ops asymmetrically, which only matters for loading TF weights (the
zoo has none for this net). The auxiliary head and drop-path of the reference's training
recipe are left out: the mobile recipe keeps every path (drop-path keep probability 1.0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoodeploy.models.spec import ModelSpec, register_model
from zoodeploy.preprocess import Preprocessing

_BN_EPS = 1e-3

# NASNet-A (Fig. 4; slim's NasNetA{Normal,Reduction}Cell): per combination a (left, right)
# op pair and the state each is applied to (0: squeezed h, 1: adjusted p, 2+: combinations);
# `used` marks the states consumed inside the cell, the rest are concatenated
NORMAL = dict(ops=("sep5", "sep3", "sep5", "sep3", "avg3", "id", "avg3", "avg3", "sep3", "id"),
              inputs=(0, 1, 1, 1, 0, 1, 1, 1, 0, 0), used=(1, 0, 0, 0, 0, 0, 0))
REDUCTION = dict(ops=("sep5", "sep7", "max3", "sep7", "avg3", "sep5", "id", "avg3", "sep3",
                      "max3"),
                 inputs=(0, 1, 0, 1, 0, 1, 3, 2, 2, 0), used=(1, 1, 1, 0, 0, 0, 0))


def _squeeze(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.BatchNorm2d(out_channels, eps=_BN_EPS))


class SeparableStack(nn.Sequential):
    """(ReLU, depthwise KxK, pointwise 1x1, BN) twice; the first depthwise conv strides."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        layers: list[nn.Module] = []
        for i in range(2):
            c = in_channels if i == 0 else out_channels
            layers += [nn.ReLU(),
                       nn.Conv2d(c, c, kernel, stride if i == 0 else 1, kernel // 2, groups=c,
                                 bias=False),
                       nn.Conv2d(c, out_channels, 1, bias=False),
                       nn.BatchNorm2d(out_channels, eps=_BN_EPS)]
        super().__init__(*layers)


class FactorizedReduction(nn.Module):
    """p at twice h's size to h's: ReLU, 1x1 convs on the even and the odd pixels, BN."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.path1 = nn.Conv2d(in_channels, out_channels // 2, 1, bias=False)
        self.path2 = nn.Conv2d(in_channels, out_channels - out_channels // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        even = x[:, :, ::2, ::2]
        # shift by one pixel (zero at the far edge) so the second path sees the odd pixels
        odd = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:][:, :, ::2, ::2]
        return self.bn(torch.cat([self.path1(even), self.path2(odd)], 1))


def _op(name: str, in_channels: int, filters: int, stride: int) -> nn.Module:
    if name.startswith("sep"):
        return SeparableStack(in_channels, filters, int(name[3:]), stride)
    if name == "avg3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name == "max3":
        return nn.MaxPool2d(3, stride, 1)
    if stride != 1 or in_channels != filters:
        raise ValueError("identity op needs stride 1 and matching channels")
    return nn.Identity()


class Cell(nn.Module):
    """One NASNet-A cell (`genotype`: NORMAL or REDUCTION).

    `adjust_prev`: "reduce" (factorized reduction), "squeeze" (ReLU-1x1-BN) or "none" (the
    first stem cell, whose p is the stem conv itself: its separable ops take it as it is).
    """

    def __init__(self, genotype: dict, h_channels: int, p_channels: int, filters: int,
                 adjust_prev: str):
        super().__init__()
        self.inputs, self.used = genotype["inputs"], genotype["used"]
        self.squeeze = _squeeze(h_channels, filters)
        if adjust_prev == "reduce":
            self.adjust = FactorizedReduction(p_channels, filters)
        elif adjust_prev == "squeeze":
            self.adjust = _squeeze(p_channels, filters)
        else:
            self.adjust = nn.Identity()
        channels = [filters, filters if adjust_prev != "none" else p_channels]
        channels += [filters] * 5
        reduction = genotype is REDUCTION
        self.ops = nn.ModuleList(
            # in a reduction cell the ops on the cell's inputs stride, those on new states not
            _op(name, channels[i], filters, 2 if reduction and i < 2 else 1)
            for name, i in zip(genotype["ops"], self.inputs))
        self.out_channels = filters * self.used.count(0)

    def forward(self, h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        states = [self.squeeze(h), self.adjust(p)]
        for k in range(0, len(self.ops), 2):
            left = self.ops[k](states[self.inputs[k]])
            right = self.ops[k + 1](states[self.inputs[k + 1]])
            states.append(left + right)
        return torch.cat([s for s, used in zip(states, self.used) if not used], 1)


class NASNetAMobile(nn.Module):
    """NASNet-A N @ penultimate_filters: stem, 2 stem cells, 3 stacks of N normal cells."""

    def __init__(self, num_classes: int = 1000, cells_per_stack: int = 4,
                 penultimate_filters: int = 1056, stem_filters: int = 32,
                 dropout: float = 0.5):
        super().__init__()
        filters = penultimate_filters // 24
        self.stem = nn.Sequential(nn.Conv2d(3, stem_filters, 3, 2, bias=False),
                                  nn.BatchNorm2d(stem_filters, eps=_BN_EPS))
        stem0 = Cell(REDUCTION, stem_filters, stem_filters, filters // 4, "none")
        stem1 = Cell(REDUCTION, stem0.out_channels, stem_filters, filters // 2, "reduce")
        self.stem_cells = nn.ModuleList([stem0, stem1])
        cells = []
        p_channels, h_channels = stem0.out_channels, stem1.out_channels
        adjust = "reduce"  # the first normal cell's p (stem cell 0) is at twice its size
        for stack in range(3):
            if stack > 0:
                filters *= 2
                cells.append(Cell(REDUCTION, h_channels, p_channels, filters, "squeeze"))
                p_channels, h_channels = h_channels, cells[-1].out_channels
                adjust = "reduce"
            for _ in range(cells_per_stack):
                cells.append(Cell(NORMAL, h_channels, p_channels, filters, adjust))
                p_channels, h_channels = h_channels, cells[-1].out_channels
                adjust = "squeeze"
        self.cells = nn.ModuleList(cells)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(h_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        p = self.stem_cells[0](x, x)
        h = self.stem_cells[1](p, x)
        for cell in self.cells:
            p, h = h, cell(h, p)
        return self.fc(self.dropout(torch.flatten(self.avgpool(self.relu(h)), 1)))


def nasnet_a_mobile(*, num_classes: int = 1000) -> NASNetAMobile:
    return NASNetAMobile(num_classes=num_classes)


register_model(ModelSpec(
    name="nasnet_a_mobile", family="NASNet", year=2018,
    paper="Learning Transferable Architectures for Scalable Image Recognition",
    builder=nasnet_a_mobile, head="fc", min_input_size=3,
    # the reference checkpoints expect [-1, 1] inputs
    preprocessing=Preprocessing(size=224, resize=256, mean=(0.5, 0.5, 0.5),
                                std=(0.5, 0.5, 0.5), interpolation="bicubic"),
    published_params=5_300_000, published_macs=564_000_000,
    figures_source="Zoph et al. 2018, Table 2 (NASNet-A (4 @ 1056): 5.3M parameters, "
                   "564M mult-adds)",
))
