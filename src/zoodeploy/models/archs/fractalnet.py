"""FractalNet (Larsson, Maire, Shakhnarovich 2017): ultra-deep networks without residuals.

A fractal block of C columns expands f_1(z) = conv(z), f_{C+1}(z) = join(f_C(f_C(z)), conv(z));
as in the paper's figure and the authors' Caffe code the joins are flattened, so the join at
the end of a block averages all C columns. conv is 3x3 conv-BN-ReLU; join is the element-wise
mean. Five blocks, each followed by 2x2 max pooling and dropout, take 32x32 to 1x1.

Drop-path regularises training only (Sec. 3.1): per mini-batch, with probability 1/2 global
drop-path keeps one column, chosen at random, through the whole network; otherwise local
drop-path has every join drop each input with probability 0.15, keeping at least one. The
choices are drawn on the host from torch's generator, so in eval mode (and in the exported
graph) there is no random op: every join is the mean of all its inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from zoodeploy.models.archs.resnet_cifar import CIFAR_PREPROCESSING
from zoodeploy.models.spec import ModelSpec, register_model

# the paper's CIFAR network: B = 5 blocks of C = 3 columns (20 conv layers deep); per-block
# dropout 0, 0.1, 0.2, 0.3, 0.4; local drop-path 0.15; half of the mini-batches global
CHANNELS = (64, 128, 256, 512, 512)
DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4)
LOCAL_DROP = 0.15
GLOBAL_SHARE = 0.5


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class Fractal(nn.Module):
    """f_C: `short` is column 0 (one conv); columns 1..C-1 run through `first` then `second`."""

    def __init__(self, columns: int, in_channels: int, out_channels: int):
        super().__init__()
        self.columns = columns
        self.short = _conv(in_channels, out_channels)
        if columns > 1:
            self.first = Fractal(columns - 1, in_channels, out_channels)
            self.second = Fractal(columns - 1, out_channels, out_channels)

    def branches(self, x: torch.Tensor, local_drop: float) -> list[torch.Tensor]:
        """The outputs of all C columns, deepest first, before this level's join."""
        if self.columns == 1:
            return [self.short(x)]
        inner = join(self.first.branches(x, local_drop), local_drop)
        return self.second.branches(inner, local_drop) + [self.short(x)]

    def column(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Column `index` alone (0: the shortest), for global drop-path."""
        if index == 0:
            return self.short(x)
        return self.second.column(self.first.column(x, index - 1), index - 1)


def join(inputs: list[torch.Tensor], local_drop: float) -> torch.Tensor:
    """Element-wise mean; with `local_drop` > 0 each input is dropped, at least one kept."""
    if len(inputs) > 1 and local_drop > 0:
        keep = (torch.rand(len(inputs)) >= local_drop).tolist()
        if not any(keep):
            keep[int(torch.randint(len(inputs), ()))] = True
        inputs = [t for t, k in zip(inputs, keep) if k]
    return inputs[0] if len(inputs) == 1 else torch.stack(inputs).mean(0)


class FractalNet(nn.Module):
    """B fractal blocks of C columns, 2x2 max pooling after each, then the FC.

    After the last pooling the map is 1x1 at 32x32 input; adaptive average pooling (the
    identity there) lets larger inputs through as well.
    """

    def __init__(self, num_classes: int = 10, columns: int = 3,
                 channels: tuple[int, ...] = CHANNELS, dropout: tuple[float, ...] = DROPOUT,
                 local_drop: float = LOCAL_DROP, global_share: float = GLOBAL_SHARE):
        super().__init__()
        self.columns, self.local_drop, self.global_share = columns, local_drop, global_share
        self.blocks = nn.ModuleList()
        self.after = nn.ModuleList()  # pooling + dropout after each block
        in_channels = 3
        for out_channels, p in zip(channels, dropout, strict=True):
            self.blocks.append(Fractal(columns, in_channels, out_channels))
            self.after.append(nn.Sequential(nn.MaxPool2d(2), nn.Dropout(p)))
            in_channels = out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # the paper's (Caffe "xavier") init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self._sample_mode()
        for block, after in zip(self.blocks, self.after):
            if isinstance(mode, int):  # global drop-path: one column through every block
                x = block.column(x, mode)
            else:
                x = join(block.branches(x, mode), mode)
            x = after(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def _sample_mode(self) -> int | float:
        """Eval: 0.0 (all paths, no drop). Training: a column index (global) or local_drop."""
        if not self.training:
            return 0.0
        if float(torch.rand(())) < self.global_share:
            return int(torch.randint(self.columns, ()))
        return self.local_drop


def fractalnet(*, num_classes: int = 10) -> FractalNet:
    return FractalNet(num_classes=num_classes)


register_model(ModelSpec(
    name="fractalnet", family="FractalNet", year=2017,
    paper="FractalNet: Ultra-Deep Neural Networks without Residuals",
    builder=fractalnet, head="fc", input_size=32, min_input_size=32,
    preprocessing=CIFAR_PREPROCESSING,
    # drop-path trains sub-networks, inference runs the whole: validated with BatchNorm statistics
    # of the whole network. Digits, one core: 12 epochs test 94.15% at peak lr 3e-3, 81.62% at
    # 1e-2 (49.03% and 35.10% with the running statistics training kept); 20 epochs 96.94% at
    # 3e-3, 95.26% at 5e-3; 30 epochs 97.21% at 3e-3 (2,340 s on one core)
    recompute_batchnorm=True, train_lr=3e-3, train_epochs=30,
    # The paper's Table 1 gives 38.6M for this 20-layer network (C=3; its 40-layer C=4 net,
    # 22.9M, has filter counts it does not give). Its layout, built as described, has
    # 33.7M: 33,698,880 conv weights + BN + FC (third-party reimplementations note the
    # same count against the paper); the 4.9M gap is unexplained in the paper.
    published_params=38_600_000, figures_num_classes=10,
    figures_source="Larsson et al. 2017, Table 1 (FractalNet, 20 layers: 38.6M; the "
                   "described layout has 33.7M, see fractalnet.py)",
))
