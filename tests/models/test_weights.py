"""Weights: torchvision's ImageNet files (offline here) and local checkpoints."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

from zoodeploy.errors import WeightsError
from zoodeploy.models.weights import hub_checkpoint_path
from zoodeploy.models.zoo import build_model

X = torch.randn(2, 3, 64, 64)


@pytest.fixture(autouse=True)
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache of our own: nothing downloaded before, nothing left behind."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    with torch.no_grad():
        return torch.equal(a.eval()(X), b.eval()(X))


def test_torchvision_state_dict_loads_as_is(tmp_path):
    reference = tvm.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    assert same_outputs(build_model("resnet18", weights=str(path)), reference)


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_checkpoint_dict_holding_a_state_dict_loads(tmp_path, key):
    reference = build_model("squeezenet1_1", num_classes=10)
    path = tmp_path / "ckpt.pt"
    torch.save({key: reference.state_dict(), "epoch": 3}, path)
    assert same_outputs(build_model("squeezenet1_1", num_classes=10, weights=path), reference)


def test_wrong_class_count_says_both_counts(tmp_path):
    path = tmp_path / "ten.pt"
    torch.save(build_model("resnet18", num_classes=10).state_dict(), path)
    with pytest.raises(WeightsError,
                       match=r"checkpoint has 10 classes, asked for 1000.*fc\.weight"):
        build_model("resnet18", weights=str(path))


def test_wrong_architecture_names_the_keys(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(build_model("resnet18", num_classes=10).state_dict(), path)
    with pytest.raises(WeightsError,
                       match=r"does not fit resnet34: \d+ missing keys \(layer1\.2\."):
        build_model("resnet34", num_classes=10, weights=str(path))
    with pytest.raises(WeightsError, match=r"shapes differ.*layer1\.0\.conv1\.weight"):
        build_model("resnet50", num_classes=10, weights=str(path))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint\n", b"PK\x03\x04 truncated zip"])
def test_corrupt_file_is_one_line(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a readable weights-only PyTorch checkpoint") as e:
        build_model("lenet5", weights=str(path))
    assert "\n" not in str(e.value)


def test_pickled_module_and_missing_file_are_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(build_model("lenet5"), path)  # a whole nn.Module is not weights-only
    with pytest.raises(WeightsError, match="weights-only"):
        build_model("lenet5", weights=str(path))
    with pytest.raises(WeightsError, match="does not exist"):
        build_model("lenet5", weights=str(tmp_path / "nope.pt"))


def test_googlenet_state_dict_without_aux_heads_loads(tmp_path):
    # torchvision drops GoogLeNet's auxiliary heads when it loads its weights
    reference = tvm.googlenet(aux_logits=False, init_weights=True, transform_input=True)
    path = tmp_path / "googlenet.pt"
    torch.save(reference.state_dict(), path)
    assert same_outputs(build_model("googlenet", weights=str(path)), reference)


@pytest.mark.timeout(60)  # the download must fail fast offline, not hang
def test_imagenet_offline_names_where_to_put_the_file():
    expected = hub_checkpoint_path("ResNet18_Weights.IMAGENET1K_V1")
    assert expected.name == "resnet18-f37072fd.pth"
    with pytest.raises(WeightsError, match="offline") as e:
        build_model("resnet18", weights="imagenet", progress=False)
    assert str(expected) in str(e.value) and "\n" not in str(e.value)


def test_imagenet_weights_in_the_hub_cache_load_without_network():
    reference = tvm.squeezenet1_1()
    path = hub_checkpoint_path("SqueezeNet1_1_Weights.IMAGENET1K_V1")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    assert same_outputs(build_model("squeezenet1_1", weights="imagenet"), reference)
    tuned = build_model("squeezenet1_1", weights="imagenet", num_classes=10)
    with torch.no_grad():
        assert tuned.eval()(X).shape == (2, 10)
    assert torch.equal(tuned.features[0].weight, reference.features[0].weight)


@pytest.mark.filterwarnings("ignore:auxiliary heads in the pretrained googlenet")
def test_imagenet_for_other_classes_replaces_auxiliary_heads_too():
    path = hub_checkpoint_path("GoogLeNet_Weights.IMAGENET1K_V1")
    path.parent.mkdir(parents=True)
    torch.save(tvm.googlenet(aux_logits=True, init_weights=False).state_dict(), path)
    model = build_model("googlenet", weights="imagenet", num_classes=10)
    assert model.fc.out_features == model.aux1.fc2.out_features == model.aux2.fc2.out_features == 10
    assert model.transform_input  # what Google's weights expect


def test_damaged_cache_file_says_delete_it():
    path = hub_checkpoint_path("SqueezeNet1_1_Weights.IMAGENET1K_V1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a download")
    with pytest.raises(WeightsError, match="delete the file"):
        build_model("squeezenet1_1", weights="imagenet")


def test_native_architecture_has_no_imagenet_weights():
    with pytest.raises(WeightsError, match="se_resnet50 has no ImageNet weights"):
        build_model("se_resnet50", weights="imagenet")
