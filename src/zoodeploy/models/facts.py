"""The zoo's names and published figures as plain data, so that `zoodeploy models list` answers and a
mistyped name is refused without importing torch (the entries under models/archs/ define nn.Modules).

`ZOO` below is written from the registry (`list_models`, `get_spec`) by
`python tests/models/test_facts.py --write`; that test fails whenever the two differ, so an entry
added, renamed or refigured under archs/ cannot be missed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoodeploy.registry import Registry

if TYPE_CHECKING:
    from zoodeploy.models.spec import ModelSpec

IMAGENET = "imagenet"  # `--weights imagenet`: an entry's torchvision weights (its weights_enum)
LIST_HINT = "list them with `zoodeploy models list`"


@dataclass(frozen=True)
class Facts:
    """What `zoodeploy models list` shows of one entry: its ModelSpec without the builder."""

    name: str
    family: str
    year: int
    paper: str
    input_size: int
    min_input_size: int
    published_params: int | None
    published_macs: int | None
    figures_source: str
    weights_enum: str | None

    @classmethod
    def of(cls, spec: ModelSpec) -> Facts:
        return cls(spec.name, spec.family, spec.year, spec.paper, spec.input_size, spec.min_input_size,
                   spec.published_params, spec.published_macs, spec.figures_source, spec.weights_enum)


def zoo_facts() -> Registry[Facts]:
    """The zoo's entries in zoo order; `.get(name)` refuses an unknown name with suggestions, as the zoo does."""
    facts: Registry[Facts] = Registry("model", hint=LIST_HINT)
    for row in ZOO:
        facts.add(row.name, row)
    return facts


def torchvision_catalogue() -> tuple[str, ...] | None:
    """torchvision's classification model names as of the version the table below was written from,
    when that version is the one installed (read from its metadata, no import); else None."""
    from importlib import metadata
    try:
        installed = metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return None
    return TORCHVISION_NAMES if installed.split("+")[0] == TORCHVISION_VERSION else None  # 0.29.1+cu130


def did_you_mean(text: str, names: list[str] | tuple[str, ...]) -> str:
    """` (did you mean a, b?)` over `names`, or nothing when none is close."""
    import difflib
    close = difflib.get_close_matches(text, list(names), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def refuse_unknown_architecture(name: str) -> None:
    """An UnknownNameError with a did-you-mean when `name` is neither a zoo entry nor (by the stored
    catalogue) a torchvision model, without importing either; with no catalogue, nothing is decided."""
    from zoodeploy.errors import UnknownNameError
    catalogue = torchvision_catalogue()
    if name in zoo_facts() or catalogue is None or name in catalogue:
        return
    close = did_you_mean(name, list(dict.fromkeys([*zoo_facts(), *catalogue])))
    raise UnknownNameError(f"{name} is neither a zoo nor a torchvision model name{close}; "
                           "list them with `zoodeploy models list --all`")


# ---- written by `python tests/models/test_facts.py --write`: do not edit by hand ----
ZOO: tuple[Facts, ...] = (
    Facts(name='lenet5', family='LeNet', year=1998, paper='Gradient-Based Learning Applied to Document Recognition',
          input_size=32, min_input_size=32, published_params=60000, published_macs=None,
          figures_source='LeCun et al. 1998, Sec. II-B (1-channel 32x32 input, 10 classes)', weights_enum=None),
    Facts(name='alexnet', family='AlexNet', year=2012,
          paper='ImageNet Classification with Deep Convolutional Neural Networks', input_size=224,
          min_input_size=63, published_params=61100840, published_macs=714000000,
          figures_source='torchvision weights meta (AlexNet_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='AlexNet_Weights.IMAGENET1K_V1'),
    Facts(name='vgg11', family='VGG', year=2014,
          paper='Very Deep Convolutional Networks for Large-Scale Image Recognition', input_size=224,
          min_input_size=32, published_params=132863336, published_macs=7609000000,
          figures_source='torchvision weights meta (VGG11_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='VGG11_Weights.IMAGENET1K_V1'),
    Facts(name='vgg16', family='VGG', year=2014,
          paper='Very Deep Convolutional Networks for Large-Scale Image Recognition', input_size=224,
          min_input_size=32, published_params=138357544, published_macs=15470000000,
          figures_source='torchvision weights meta (VGG16_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='VGG16_Weights.IMAGENET1K_V1'),
    Facts(name='vgg19', family='VGG', year=2014,
          paper='Very Deep Convolutional Networks for Large-Scale Image Recognition', input_size=224,
          min_input_size=32, published_params=143667240, published_macs=19632000000,
          figures_source='torchvision weights meta (VGG19_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='VGG19_Weights.IMAGENET1K_V1'),
    Facts(name='vgg16_bn', family='VGG', year=2014,
          paper='Very Deep Convolutional Networks for Large-Scale Image Recognition', input_size=224,
          min_input_size=32, published_params=138365992, published_macs=15470000000,
          figures_source='torchvision weights meta (VGG16_BN_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='VGG16_BN_Weights.IMAGENET1K_V1'),
    Facts(name='googlenet', family='GoogLeNet', year=2014, paper='Going Deeper with Convolutions', input_size=224,
          min_input_size=15, published_params=6624904, published_macs=1498000000,
          figures_source='torchvision weights meta (GoogLeNet_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='GoogLeNet_Weights.IMAGENET1K_V1'),
    Facts(name='inception_v3', family='Inception', year=2015,
          paper='Rethinking the Inception Architecture for Computer Vision', input_size=299, min_input_size=75,
          published_params=27161264, published_macs=5713000000,
          figures_source='torchvision weights meta (Inception_V3_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='Inception_V3_Weights.IMAGENET1K_V1'),
    Facts(name='resnet18', family='ResNet', year=2015, paper='Deep Residual Learning for Image Recognition',
          input_size=224, min_input_size=1, published_params=11689512, published_macs=1814000000,
          figures_source='torchvision weights meta (ResNet18_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='ResNet18_Weights.IMAGENET1K_V1'),
    Facts(name='resnet34', family='ResNet', year=2015, paper='Deep Residual Learning for Image Recognition',
          input_size=224, min_input_size=1, published_params=21797672, published_macs=3664000000,
          figures_source='torchvision weights meta (ResNet34_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='ResNet34_Weights.IMAGENET1K_V1'),
    Facts(name='resnet50', family='ResNet', year=2015, paper='Deep Residual Learning for Image Recognition',
          input_size=224, min_input_size=1, published_params=25557032, published_macs=4089000000,
          figures_source='torchvision weights meta (ResNet50_Weights.IMAGENET1K_V2: num_params, _ops)',
          weights_enum='ResNet50_Weights.IMAGENET1K_V2'),
    Facts(name='resnet101', family='ResNet', year=2015, paper='Deep Residual Learning for Image Recognition',
          input_size=224, min_input_size=1, published_params=44549160, published_macs=7801000000,
          figures_source='torchvision weights meta (ResNet101_Weights.IMAGENET1K_V2: num_params, _ops)',
          weights_enum='ResNet101_Weights.IMAGENET1K_V2'),
    Facts(name='resnet152', family='ResNet', year=2015, paper='Deep Residual Learning for Image Recognition',
          input_size=224, min_input_size=1, published_params=60192808, published_macs=11514000000,
          figures_source='torchvision weights meta (ResNet152_Weights.IMAGENET1K_V2: num_params, _ops)',
          weights_enum='ResNet152_Weights.IMAGENET1K_V2'),
    Facts(name='wide_resnet50_2', family='WideResNet', year=2016, paper='Wide Residual Networks', input_size=224,
          min_input_size=1, published_params=68883240, published_macs=11398000000,
          figures_source='torchvision weights meta (Wide_ResNet50_2_Weights.IMAGENET1K_V2: num_params, _ops)',
          weights_enum='Wide_ResNet50_2_Weights.IMAGENET1K_V2'),
    Facts(name='resnext50_32x4d', family='ResNeXt', year=2016,
          paper='Aggregated Residual Transformations for Deep Neural Networks', input_size=224, min_input_size=1,
          published_params=25028904, published_macs=4230000000,
          figures_source='torchvision weights meta (ResNeXt50_32X4D_Weights.IMAGENET1K_V2: num_params, _ops)',
          weights_enum='ResNeXt50_32X4D_Weights.IMAGENET1K_V2'),
    Facts(name='densenet121', family='DenseNet', year=2016, paper='Densely Connected Convolutional Networks',
          input_size=224, min_input_size=29, published_params=7978856, published_macs=2834000000,
          figures_source='torchvision weights meta (DenseNet121_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='DenseNet121_Weights.IMAGENET1K_V1'),
    Facts(name='densenet169', family='DenseNet', year=2016, paper='Densely Connected Convolutional Networks',
          input_size=224, min_input_size=29, published_params=14149480, published_macs=3360000000,
          figures_source='torchvision weights meta (DenseNet169_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='DenseNet169_Weights.IMAGENET1K_V1'),
    Facts(name='squeezenet1_0', family='SqueezeNet', year=2016,
          paper='SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size',
          input_size=224, min_input_size=21, published_params=1248424, published_macs=819000000,
          figures_source='torchvision weights meta (SqueezeNet1_0_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='SqueezeNet1_0_Weights.IMAGENET1K_V1'),
    Facts(name='squeezenet1_1', family='SqueezeNet', year=2016,
          paper='SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size',
          input_size=224, min_input_size=17, published_params=1235496, published_macs=349000000,
          figures_source='torchvision weights meta (SqueezeNet1_1_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='SqueezeNet1_1_Weights.IMAGENET1K_V1'),
    Facts(name='mobilenet_v2', family='MobileNet', year=2018,
          paper='MobileNetV2: Inverted Residuals and Linear Bottlenecks', input_size=224, min_input_size=1,
          published_params=3504872, published_macs=301000000,
          figures_source='torchvision weights meta (MobileNet_V2_Weights.IMAGENET1K_V2: num_params, _ops)',
          weights_enum='MobileNet_V2_Weights.IMAGENET1K_V2'),
    Facts(name='mobilenet_v3_small', family='MobileNet', year=2019, paper='Searching for MobileNetV3',
          input_size=224, min_input_size=1, published_params=2542856, published_macs=57000000,
          figures_source='torchvision weights meta (MobileNet_V3_Small_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='MobileNet_V3_Small_Weights.IMAGENET1K_V1'),
    Facts(name='mobilenet_v3_large', family='MobileNet', year=2019, paper='Searching for MobileNetV3',
          input_size=224, min_input_size=1, published_params=5483032, published_macs=217000000,
          figures_source='torchvision weights meta (MobileNet_V3_Large_Weights.IMAGENET1K_V2: num_params, _ops)',
          weights_enum='MobileNet_V3_Large_Weights.IMAGENET1K_V2'),
    Facts(name='shufflenet_v2_x1_0', family='ShuffleNet', year=2018,
          paper='ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design', input_size=224,
          min_input_size=1, published_params=2278604, published_macs=145000000,
          figures_source='torchvision weights meta (ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1'),
    Facts(name='efficientnet_b0', family='EfficientNet', year=2019,
          paper='EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks', input_size=224,
          min_input_size=1, published_params=5288548, published_macs=386000000,
          figures_source='torchvision weights meta (EfficientNet_B0_Weights.IMAGENET1K_V1: num_params, _ops)',
          weights_enum='EfficientNet_B0_Weights.IMAGENET1K_V1'),
    Facts(name='zfnet', family='ZFNet', year=2013, paper='Visualizing and Understanding Convolutional Networks',
          input_size=224, min_input_size=63, published_params=None, published_macs=None,
          figures_source="Zeiler & Fergus 2013 publish no parameter or operation count; measured from Fig. 3's layout",
          weights_enum=None),
    Facts(name='nin', family='NIN', year=2013, paper='Network In Network', input_size=224, min_input_size=39,
          published_params=None, published_macs=None,
          figures_source="Lin et al. 2013 report ImageNet results without parameter or operation counts; layout of the authors' Caffe ImageNet model (nin_imagenet)",
          weights_enum=None),
    Facts(name='mobilenet_v1', family='MobileNet', year=2017,
          paper='MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications',
          input_size=224, min_input_size=1, published_params=4200000, published_macs=569000000,
          figures_source='Howard et al. 2017, Tables 6 and 8 (1.0 MobileNet-224: 4.2M parameters, 569M mult-adds)',
          weights_enum=None),
    Facts(name='se_resnet50', family='SENet', year=2018, paper='Squeeze-and-Excitation Networks', input_size=224,
          min_input_size=1, published_params=28100000, published_macs=3870000000,
          figures_source='Hu et al. 2018: 3.87 GFLOPs, which count multiply-adds (Table 2), and 28.1M parameters at reduction 16 (reduction-ratio ablation table)',
          weights_enum=None),
    Facts(name='preact_resnet18', family='ResNet', year=2016, paper='Identity Mappings in Deep Residual Networks',
          input_size=224, min_input_size=1, published_params=11700000, published_macs=1800000000,
          figures_source="He et al. 2016, 'Deep Residual Learning', Table 1 (1.8 GFLOPs = multiply-adds); 11.7M parameters as quoted for ResNet-18 (torchvision meta); pre-activation keeps every conv and FC of the original",
          weights_enum=None),
    Facts(name='preact_resnet50', family='ResNet', year=2016, paper='Identity Mappings in Deep Residual Networks',
          input_size=224, min_input_size=1, published_params=25600000, published_macs=3800000000,
          figures_source="He et al. 2016, 'Deep Residual Learning', Table 1 (3.8 GFLOPs = multiply-adds); 25.6M parameters as quoted for ResNet-50 (torchvision meta); pre-activation keeps every conv and FC of the original",
          weights_enum=None),
    Facts(name='preact_resnet164', family='ResNet', year=2016, paper='Identity Mappings in Deep Residual Networks',
          input_size=32, min_input_size=1, published_params=1700000, published_macs=None,
          figures_source="He et al. 2016, 'Identity Mappings', Table 3 (ResNet-164, CIFAR-10: 1.7M)",
          weights_enum=None),
    Facts(name='resnet110', family='ResNet', year=2016, paper='Deep Residual Learning for Image Recognition',
          input_size=32, min_input_size=1, published_params=1700000, published_macs=None,
          figures_source='He et al. 2016, Table 6 (CIFAR-10, option A shortcuts: 1.7M; no operation counts for CIFAR)',
          weights_enum=None),
    Facts(name='resnet1202', family='ResNet', year=2016, paper='Deep Residual Learning for Image Recognition',
          input_size=32, min_input_size=1, published_params=19400000, published_macs=None,
          figures_source='He et al. 2016, Table 6 (CIFAR-10, option A shortcuts: 19.4M; no operation counts for CIFAR)',
          weights_enum=None),
    Facts(name='wrn28_10', family='WideResNet', year=2016, paper='Wide Residual Networks', input_size=32,
          min_input_size=1, published_params=36500000, published_macs=None,
          figures_source='Zagoruyko & Komodakis 2016, Tables 4 and 5 (WRN-28-10 on CIFAR: 36.5M)',
          weights_enum=None),
    Facts(name='fractalnet', family='FractalNet', year=2017,
          paper='FractalNet: Ultra-Deep Neural Networks without Residuals', input_size=32, min_input_size=32,
          published_params=38600000, published_macs=None,
          figures_source='Larsson et al. 2017, Table 1 (FractalNet, 20 layers: 38.6M; the described layout has 33.7M, see fractalnet.py)',
          weights_enum=None),
    Facts(name='inception_v4', family='Inception', year=2016,
          paper='Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning', input_size=299,
          min_input_size=75, published_params=42700000, published_macs=None,
          figures_source="the paper gives no parameter count; 42.7M is the count of the reference TF-slim checkpoint (inception_v4), as quoted by the TF-slim model table and timm's port",
          weights_enum=None),
    Facts(name='inception_resnet_v2', family='Inception', year=2016,
          paper='Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning', input_size=299,
          min_input_size=75, published_params=55800000, published_macs=None,
          figures_source="the paper gives no parameter count; 55.8M is the count of the reference TF-slim checkpoint (inception_resnet_v2), as quoted by the TF-slim model table and timm's port",
          weights_enum=None),
    Facts(name='nasnet_a_mobile', family='NASNet', year=2018,
          paper='Learning Transferable Architectures for Scalable Image Recognition', input_size=224,
          min_input_size=3, published_params=5300000, published_macs=564000000,
          figures_source='Zoph et al. 2018, Table 2 (NASNet-A (4 @ 1056): 5.3M parameters, 564M mult-adds)',
          weights_enum=None),
)
TORCHVISION_VERSION = '0.29.1'
TORCHVISION_NAMES: tuple[str, ...] = (
    'alexnet', 'convnext_base', 'convnext_large', 'convnext_small', 'convnext_tiny', 'densenet121',
    'densenet161', 'densenet169', 'densenet201', 'efficientnet_b0', 'efficientnet_b1', 'efficientnet_b2',
    'efficientnet_b3', 'efficientnet_b4', 'efficientnet_b5', 'efficientnet_b6', 'efficientnet_b7',
    'efficientnet_v2_l', 'efficientnet_v2_m', 'efficientnet_v2_s', 'googlenet', 'inception_v3', 'maxvit_t',
    'mnasnet0_5', 'mnasnet0_75', 'mnasnet1_0', 'mnasnet1_3', 'mobilenet_v2', 'mobilenet_v3_large',
    'mobilenet_v3_small', 'regnet_x_16gf', 'regnet_x_1_6gf', 'regnet_x_32gf', 'regnet_x_3_2gf',
    'regnet_x_400mf', 'regnet_x_800mf', 'regnet_x_8gf', 'regnet_y_128gf', 'regnet_y_16gf', 'regnet_y_1_6gf',
    'regnet_y_32gf', 'regnet_y_3_2gf', 'regnet_y_400mf', 'regnet_y_800mf', 'regnet_y_8gf', 'resnet101',
    'resnet152', 'resnet18', 'resnet34', 'resnet50', 'resnext101_32x8d', 'resnext101_64x4d', 'resnext50_32x4d',
    'shufflenet_v2_x0_5', 'shufflenet_v2_x1_0', 'shufflenet_v2_x1_5', 'shufflenet_v2_x2_0', 'squeezenet1_0',
    'squeezenet1_1', 'swin_b', 'swin_s', 'swin_t', 'swin_v2_b', 'swin_v2_s', 'swin_v2_t', 'vgg11', 'vgg11_bn',
    'vgg13', 'vgg13_bn', 'vgg16', 'vgg16_bn', 'vgg19', 'vgg19_bn', 'vit_b_16', 'vit_b_32', 'vit_h_14',
    'vit_l_16', 'vit_l_32', 'wide_resnet101_2', 'wide_resnet50_2',
)
