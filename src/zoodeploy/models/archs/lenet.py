"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), in its common modern reading."""

from __future__ import annotations

import torch
from torch import nn

from zoodeploy.models.spec import ModelSpec, register_model
from zoodeploy.preprocess import Preprocessing


class LeNet5(nn.Module):
    """C1 conv5x5x6, S2, C3 conv5x5x16, S4, C5 conv5x5x120, F6 84, output; tanh throughout.

    Departures from the paper, all standard today: C3 sees all six S2 maps (the paper wires
    each C3 map to a subset, Table I), S2/S4 are plain 2x2 average pooling (the paper's have a
    trainable coefficient and bias per map) and the output is a linear layer (the paper's is
    Euclidean RBF units). C5 is a convolution as in the paper, so inputs above 32x32 leave a
    map that adaptive pooling reduces to 1x1 before F6.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2),  # C1, S2
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),  # C3, S4
            nn.Conv2d(16, 120, 5), nn.Tanh(),  # C5
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def lenet5(*, num_classes: int = 10, in_channels: int = 3) -> LeNet5:
    """LeNet-5 for RGB input (`in_channels=1` gives the paper's grey-scale network)."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)


register_model(ModelSpec(
    name="lenet5", family="LeNet", year=1998,
    paper="Gradient-Based Learning Applied to Document Recognition",
    builder=lenet5, head="classifier.2", input_size=32, min_input_size=32,
    train_epochs=20,  # tanh + average pooling learn slowly; its epochs cost well under a second
    preprocessing=Preprocessing(size=32, resize=32),
    # The paper's ~60,000 (Sec. II-B; 60,840 summed over its layers) is for 1-channel input
    # and 10 classes. This RGB build has 62,006: +300 for the RGB C1, +900 for the full C3
    # wiring, -44 for parameter-free pooling, +10 for output biases. The paper gives 340,908
    # connections, not multiply-accumulates, so no MAC figure is recorded.
    published_params=60_000, figures_num_classes=10,
    figures_source="LeCun et al. 1998, Sec. II-B (1-channel 32x32 input, 10 classes)",
))
