"""Zoo entries: importing this package registers every architecture, in zoo order.

Each entry is one file here that calls `register_model(ModelSpec(...))` (models/spec.py); a new
one also needs its line below, where it should appear in `zoodeploy models list`.
"""

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
