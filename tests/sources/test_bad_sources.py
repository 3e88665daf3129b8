"""Every bad SOURCE input is one line on stderr, exit 1, and nothing half-written."""

from __future__ import annotations

import onnx
import pytest
from cli_support import assert_one_line_error, invoke_cli, run_cli
from onnx import TensorProto, helper

NET = '''
from torch import nn

def good():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

def spatial():
    return nn.Conv2d(3, 4, 3, padding=1)  # (N, 4, H, W): not logits

def boom():
    raise RuntimeError("no weights here")

def not_a_module():
    return 42
'''


@pytest.fixture
def net(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def _export(tmp_path, source, *more):
    out = tmp_path / "out"
    r = invoke_cli("export", source, "-o", out, "--input-size", 16, *more)
    assert not out.exists(), "a refused export left a directory behind"
    return r


@pytest.mark.parametrize("ref, needle", [
    ("missing.py:good", "does not exist"),
    ("{net}:absent", "has no function 'absent'"),
    ("{net}:boom", "raised RuntimeError: no weights here"),
    ("{net}:not_a_module", "returned int, not a torch.nn.Module"),
    ("{net}:spatial", "returns [2, 4, 16, 16]"),
    ("no_such_package_zd.models:make", "cannot import no_such_package_zd.models"),
    ("resnet_19", "neither an artifact directory"),
])
def test_bad_callables_and_names(tmp_path, net, ref, needle):
    assert_one_line_error(_export(tmp_path, ref.format(net=net)), needle)


def test_labels_of_the_wrong_length(tmp_path, net):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    assert_one_line_error(_export(tmp_path, f"{net}:good", "--labels", labels),
                          "outputs 10 classes", "names 3")
    (tmp_path / "bad.json").write_text('["a", 1')
    assert_one_line_error(_export(tmp_path, f"{net}:good", "--labels", tmp_path / "bad.json"), "not a valid JSON")


@pytest.mark.parametrize("spec, needle", [
    ("resize=abc", "invalid literal"),
    ("crop224", "is not KEY=VALUE"),
    ("mean=0.5,0.5", "mean needs 3 value(s)"),
    ("gamma=2", "unknown key(s) gamma"),
    ("interpolation=cubic", "interpolation must be one of"),
    # a record that would run and answer NaN, or write a card that cannot be read back (#30)
    ("std=0,0,0", "std must not be 0"),
    ("std=0.2,0,0.2", "std must not be 0"),
    ("mean=nan,nan,nan", "mean must be finite"),
    ("std=inf,1,1", "std must be finite"),
    ("size=0", "size must be H or HxW"),
    ("size=16x0", "size must be H or HxW"),
    ("size=16,resize=8", "resize must be at least"),
    ("mode=stretch", "mode must be one of"),
    ("pad=0,0,300", "pad must be 3 whole pixel values"),
    ("channels=gray,mean=0.5,0.5,0.5", "mean needs 1 value(s) for channels=gray"),
    ("dtype=uint8,mean=0,0,0", "dtype=uint8 feeds raw"),
    ("scale=100", "scale must be one of"),
    ("size=16,crop=16", "one setting"),
])
def test_malformed_preprocessing(tmp_path, net, spec, needle):
    assert_one_line_error(_export(tmp_path, f"{net}:good", "--preprocessing", spec), needle)


def test_folder_without_images(tmp_path, net):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(_export(tmp_path, f"{net}:good", "--calib-data", tmp_path / "empty"), "has no images")


def _onnx(path, inputs):
    nodes = [helper.make_node("Identity", [inputs[0].name], ["logits"])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_onnx_with_two_inputs_or_no_image_input(tmp_path, unlabelled):
    image = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    two = _onnx(tmp_path / "two.onnx", [image, helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    ids = _onnx(tmp_path / "ids.onnx", [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3, 8, 8])])
    flat = _onnx(tmp_path / "flat.onnx", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])])
    for model, needle in ((two, "has 2 inputs"), (ids, "is INT64"), (flat, "need (N, C, H, W)")):
        r = invoke_cli("optimize", model, "--calib-data", unlabelled, "--no-bench")
        assert_one_line_error(r, needle)
        assert not (tmp_path / f"{model.stem}-artifact").exists()


def test_real_subprocess_refuses_in_one_line(tmp_path, net):
    out = tmp_path / "out"
    r = run_cli("export", f"{net}:boom", "-o", out, timeout=300)
    assert_one_line_error(r, "raised RuntimeError")
    assert not out.exists()
