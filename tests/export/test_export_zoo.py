"""Every zoo architecture exports with the dynamo exporter and validates against PyTorch.

Small inputs for the sweep (the `zoo_artifact` fixture: random init, digits, max(32, the
architecture's minimum) px); the full default size for a few small architectures.
"""

import numpy as np
import onnx
import pytest

from zoodeploy.card import load_card
from zoodeploy.export import FP32_FILE, Tolerance, read_card_metadata
from zoodeploy.export.validate import Comparison
from zoodeploy.models.zoo import get_spec, list_models
from zoodeploy.preprocess import Preprocessing
from zoodeploy.runtime import EAGER, open_runner

TRAINING_ONLY_OPS = {"Dropout"}


def dims(value):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def assert_exported(art, name):
    card = load_card(art)
    v = card.variants["fp32"]
    size = card.input_size
    # validated on real images at batch 1 and a larger batch, within the default tolerance
    assert v.validation["samples"].startswith("digits val split")
    comps = [Comparison(**c) for c in v.validation["comparisons"]]
    assert [c.batch for c in comps] == [1, 8] and all(c.samples >= 16 for c in comps)
    assert all(c.failures(Tolerance()) == [] for c in comps), comps
    assert v.recipe["batch"] == "dynamic" and v.recipe["opset"] == 18

    model = onnx.load(str(art / FP32_FILE))
    assert [(i.name, dims(i)) for i in model.graph.input] == [("input", ["batch", 3, size, size])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [("logits", ["batch", card.num_classes])]
    assert not TRAINING_ONLY_OPS & {n.op_type for n in model.graph.node}
    # GoogLeNet / Inception auxiliary classifiers serve training only: none of their weights
    aux = [i.name for i in model.graph.initializer if "aux" in i.name.lower()]
    assert not aux, aux[:3]

    meta = read_card_metadata(art / FP32_FILE)
    assert (meta["name"], meta["labels"], meta["input_shape"]) == (name, card.labels, ["batch", 3, size, size])
    assert Preprocessing.from_dict(meta["preprocessing"]) == card.preprocessing
    assert meta["source_sha256"] == card.checkpoint_sha256

    # a third batch size, through our own runtime, against the PyTorch checkpoint
    x = np.random.default_rng(1).standard_normal((3, 3, size, size)).astype(np.float32)
    onnx_runner, eager = open_runner(art, "fp32"), open_runner(art, EAGER)
    try:
        got, want = onnx_runner.run(x), eager.run(x)
    finally:
        onnx_runner.close()
        eager.close()
    scale = np.abs(want).max(axis=1, keepdims=True)
    assert (np.abs(got - want) <= np.maximum(1e-4, 1e-4 * scale)).all()


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_exports_and_validates(zoo_artifact, name):
    assert_exported(zoo_artifact(name), name)


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_small"])
def test_small_model_exports_at_its_full_default_size(zoo_artifact, name):
    size = get_spec(name).input_size
    art = zoo_artifact(name, image_size=size)
    assert load_card(art).input_size == size == 224
    assert_exported(art, name)
