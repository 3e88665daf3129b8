"""The zoo as pytest parameters, and what an exported zoo artifact must hold; shared by the
zoo sweep (tests/optimize/test_zoo_sweep.py) and the full-size exports (tests/export)."""

from __future__ import annotations

import json
import os

import onnx
import pytest
import torch
from torch import nn

from zoodeploy.card import ONNX_METADATA_KEY, load_card
from zoodeploy.export import FP32_FILE, Tolerance
from zoodeploy.export.validate import failures
from zoodeploy.fileio import sha256_file
from zoodeploy.models.zoo import get_spec, list_models
from zoodeploy.preprocess import Preprocessing

BIG = 100_000_000  # parameters: the VGGs, whose 0.5 GB classifiers make every save, load and session slow
# training-only or random ops: none may reach an inference graph (FractalNet's drop-path included)
TRAINING_ONLY_OPS = {"Dropout", "RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike",
                     "Bernoulli", "Multinomial"}


# 1,202 layers: its export alone had not ended after 8 minutes on one core of the 2-core machine
# (under cProfile), and ONNX Runtime's quantizer, before fuse + int8 went to resnet110 for it, ran
# past 10; so this entry is swept only on request (ZOODEPLOY_DEEP_SWEEP=1), and the skip says so
DEEP = {"resnet1202"}
DEEP_SWEEP = os.environ.get("ZOODEPLOY_DEEP_SWEEP") == "1"


# Fuse and int8 run in the sweep once per set of layer kinds. An entry on the left is a deeper or
# wider form of the one on the right: every kind of layer it has (module class; convolutions
# dense, grouped or depthwise) the right one has too (tests/models/test_zoo.py checks it on the
# meta device), so its fused and int8 graphs hold no pattern the right one's do not, only more of
# them. Those entries are exported and validated in the sweep (what can differ: capture, dynamic
# batch, translation, ORT vs PyTorch); their fuse + int8 would add ~200 s of the 2-core machine
# (the three plain VGGs alone ~130 s: every step moves their 0.5 GB) and no coverage.
QUANTIZED_AS = {"vgg11": "vgg16_bn", "vgg16": "vgg16_bn", "vgg19": "vgg16_bn", "resnet34": "resnet18",
                "resnet50": "resnext50_32x4d", "resnet101": "resnext50_32x4d", "resnet152": "resnext50_32x4d",
                "wide_resnet50_2": "resnext50_32x4d", "densenet169": "densenet121",
                "squeezenet1_0": "squeezenet1_1", "mobilenet_v3_large": "mobilenet_v3_small",
                "preact_resnet164": "preact_resnet50", "resnet1202": "resnet110"}


def meta_model(name: str, num_classes: int = 10) -> nn.Module:
    """The architecture without allocating weights: shapes are all these tests need."""
    with torch.device("meta"):
        return get_spec(name).builder(num_classes=num_classes).eval()


def layer_kinds(name: str) -> frozenset[str]:
    """The kinds of layer `name` is made of: module classes, convolutions by their grouping."""
    kinds = set()
    for module in meta_model(name).modules():
        kind = type(module).__name__
        if isinstance(module, nn.Conv2d):
            kind += ("/depthwise" if module.groups == module.in_channels > 1 else
                     "/grouped" if module.groups > 1 else "/dense")
        kinds.add(kind)
    return frozenset(kinds)


# Seconds of each of the longest sweep entries (`bash scripts/test.sh --durations=25`, 2-core AMD
# EPYC): only the order of the sweep comes from them, the longest first, so that the short ones
# fill in at the end and both workers finish together (last in zoo order, the Inceptions and
# NASNet ended the run ~50 s after the other worker). A stale figure costs time, never a check.
SWEEP_SECONDS = {"inception_resnet_v2": 82, "inception_v4": 49, "wrn28_10": 45, "nasnet_a_mobile": 41,
                 "resnet152": 25, "densenet169": 25, "densenet121": 23, "alexnet": 21, "inception_v3": 21,
                 "fractalnet": 20, "preact_resnet164": 19, "resnet110": 17, "se_resnet50": 16,
                 "wide_resnet50_2": 16, "resnext50_32x4d": 15, "resnet101": 15, "zfnet": 15, "preact_resnet50": 15}


def zoo_params(names: list[str] | None = None) -> list:
    """Zoo names (all by default), the >100M-parameter ones marked `slow`; each its own pytest-xdist
    group, so that the sweep spreads over the workers (a file's tests otherwise share one), except
    the >100M-parameter ones: one group, one after another on one worker. Two of them at once on
    the 2-core machine take three times as long each (measured: VGG-11 and VGG-16 entries 28 and
    31 s alone, 86 and 83 s side by side), as every one of their steps moves half a gigabyte."""
    deep = pytest.mark.skipif(not DEEP_SWEEP, reason="1,202-layer net: over 8 min to export on one core; "
                                                     "run with ZOODEPLOY_DEEP_SWEEP=1")
    names = sorted(names or list_models(), key=lambda n: -SWEEP_SECONDS.get(n, 0))  # stable: the rest in zoo order
    return [pytest.param(n, marks=[pytest.mark.xdist_group("zoo-big" if _big(n) else n)]
                         + ([pytest.mark.slow] if _big(n) else [])
                         + ([deep, pytest.mark.timeout(3600)] if n in DEEP else []))
            for n in names]


def _big(name: str) -> bool:
    return (get_spec(name).published_params or 0) > BIG


def dims(value):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def assert_exported(art, name):
    """The card's fp32 variant and its file: validated, dynamic batch, self-describing, inference only.

    The validation figures come from the export itself (ONNX Runtime vs the PyTorch model on the
    val split at batch 1 and 8); that this check catches a graph that differs from PyTorch is
    tested on its own in tests/export/test_export.py.
    """
    card = load_card(art)
    v = card.variants["fp32"]
    size = card.input_size
    assert v.validation.samples.startswith("digits val split")
    comps = v.validation.comparisons
    assert [c.batch for c in comps] == [1, 8] and all(c.samples >= 16 for c in comps)
    assert all(failures(c, Tolerance()) == [] for c in comps), comps
    assert v.recipe.batch == "dynamic" and v.recipe.opset == 18
    assert v.sha256 == sha256_file(art / FP32_FILE)

    model = onnx.load(str(art / FP32_FILE))  # once: heavy for the VGGs (500 MB)
    assert [(i.name, dims(i)) for i in model.graph.input] == [("input", ["batch", 3, size, size])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [("logits", ["batch", card.num_classes])]
    assert not TRAINING_ONLY_OPS & {n.op_type for n in model.graph.node}
    # GoogLeNet / Inception auxiliary classifiers serve training only: none of their weights
    aux = [i.name for i in model.graph.initializer if "aux" in i.name.lower()]
    assert not aux, aux[:3]

    meta = json.loads({p.key: p.value for p in model.metadata_props}[ONNX_METADATA_KEY])
    assert (meta["name"], meta["labels"], meta["input_shape"]) == (name, card.labels, ["batch", 3, size, size])
    assert Preprocessing.from_dict(meta["preprocessing"]) == card.preprocessing
    assert meta["source_sha256"] == card.checkpoint_sha256
