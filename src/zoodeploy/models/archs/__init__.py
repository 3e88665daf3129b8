"""Zoo entries: importing this package registers every architecture, in zoo order."""

from zoodeploy.models.archs import (  # noqa: F401
    lenet,
    torchvision_models,
    zfnet,
    nin,
    mobilenet_v1,
    se_resnet,
    preact_resnet,
    resnet_cifar,
    wide_resnet_cifar,
    fractalnet,
    inception_v4,
    nasnet,
)
