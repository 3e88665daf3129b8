"""profile_model: deployed and auxiliary parameters, MACs (grouped convs included), activation memory, layer rows."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from zoodeploy.errors import ZoodeployError
from zoodeploy.models.profile import profile_arch, profile_model


class Tiny(nn.Module):
    """conv 3->8 3x3, depthwise 8 3x3/2, grouped 8->16 1x1 (4 groups), pool, fc 16->5, + a
    layer the forward never calls (like a training-only auxiliary head)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),
            nn.Conv2d(8, 16, 1, groups=4),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(16, 5)
        self.unused = nn.Linear(16, 100)

    def forward(self, x):
        return self.fc(self.features(x))


def test_counts_macs_of_plain_depthwise_and_grouped_convs_and_linear():
    p = profile_model(Tiny(), 8)
    conv = 8 * 8 * 8 * (3 * 9)  # 8x8 output maps x 8 channels, each 3 in-maps x 3x3
    depthwise = 4 * 4 * 8 * (1 * 9)  # stride 2: 4x4, one input map per output map
    grouped = 4 * 4 * 16 * (8 // 4)  # 1x1 over the 2 in-maps of its group
    assert p.macs == conv + depthwise + grouped + 16 * 5


def test_counts_deployed_trainable_and_aux_parameters():
    model = Tiny()
    model.features[0].requires_grad_(False)
    total = sum(x.numel() for x in model.parameters())
    p = profile_model(model, 8, aux=["unused"])
    assert p.aux_params == 16 * 100 + 100
    assert p.params == total - p.aux_params
    assert p.trainable_params == p.params - (8 * 3 * 9 + 8)
    plain = profile_model(model, 8)  # nothing named auxiliary: every parameter is deployed
    assert (plain.params, plain.aux_params) == (total, 0)
    assert plain.macs == p.macs


def test_activation_bytes_sum_leaf_outputs_at_batch_1():
    p = profile_model(Tiny(), 8)
    floats = 8 * 8 * 8 * 2 + 8 * 4 * 4 + 16 * 4 * 4 + 16 * 2 + 5  # relu and flatten count too
    assert p.activation_bytes == 4 * floats


def test_layer_rows_follow_execution_order():
    p = profile_model(Tiny(), 8, layers=True)
    assert [r.name for r in p.layers] == [f"features.{i}" for i in range(6)] + ["fc"]
    assert p.layers[2].output_shape == (1, 8, 4, 4)
    assert p.layers[2].params == 8 * 9 and p.layers[2].macs == 4 * 4 * 8 * 9
    assert sum(r.macs for r in p.layers) == p.macs
    assert profile_model(Tiny(), 8).layers == ()


def test_is_pure_leaves_mode_and_hooks_as_found():
    model = Tiny().train()
    profile_model(model, 8)
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_meta_device_gives_the_same_figures():
    cpu = profile_model(Tiny(), 16, layers=True)
    with torch.device("meta"):
        meta = profile_model(Tiny(), 16, layers=True)
    assert meta == cpu


def test_to_dict_is_json_ready():
    d = profile_model(Tiny(), 8, layers=True, aux=["unused"]).to_dict()
    assert d["macs"] > 0 and d["layers"][0]["output_shape"] == [1, 8, 8, 8]
    assert d["aux_params"] == 1_700


def test_profile_arch_measures_the_default_input():
    p = profile_arch("resnet18")
    assert (p.input_size, p.params, p.macs) == (224, 11_689_512, 1_814_073_344)
    assert p.aux_params == 0


# torchvision's weights meta, exact: GoogLeNet's builder drops aux1/aux2 when it loads weights
# and counts the inference model; Inception v3's keeps AuxLogits and counts it in
@pytest.mark.parametrize(("name", "weights", "params", "aux_params", "meta_counts_aux"), [
    ("googlenet", "GoogLeNet_Weights.IMAGENET1K_V1", 6_624_904, 6_379_984, False),
    ("inception_v3", "Inception_V3_Weights.IMAGENET1K_V1", 23_834_568, 3_326_696, True),
])
def test_profile_arch_counts_the_deployed_model_and_the_aux_heads_apart(
        name, weights, params, aux_params, meta_counts_aux):
    p = profile_arch(name)
    assert (p.params, p.aux_params) == (params, aux_params)
    num_params = tvm.get_weight(weights).meta["num_params"]
    assert num_params == (params + aux_params if meta_counts_aux else params)


def test_profile_arch_refuses_too_small_an_input():
    with pytest.raises(ZoodeployError, match="inception_v3 needs an input of at least 75"):
        profile_arch("inception_v3", input_size=64)
