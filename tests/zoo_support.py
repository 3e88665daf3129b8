"""The zoo as pytest parameters, and what an exported zoo artifact must hold; shared by the
zoo sweep (tests/optimize/test_zoo_sweep.py) and the full-size exports (tests/export)."""

from __future__ import annotations

import json
import os

import onnx
import pytest

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


# 1,202 layers: ONNX Runtime's quantizer alone ran past 600 s on one core of the 2-core machine, so
# this entry is swept only on request (ZOODEPLOY_DEEP_SWEEP=1), and the skip says so in the summary
DEEP = {"resnet1202"}
DEEP_SWEEP = os.environ.get("ZOODEPLOY_DEEP_SWEEP") == "1"


# Seconds of each of the longest sweep entries (`bash scripts/test.sh --durations=25`, 2-core AMD
# EPYC): only the order of the sweep comes from them, the longest first, so that the short ones
# fill in at the end and both workers finish together (last in zoo order, the Inceptions and
# NASNet ended the run ~50 s after the other worker). A stale figure costs time, never a check.
SWEEP_SECONDS = {"inception_resnet_v2": 65, "wrn28_10": 47, "nasnet_a_mobile": 47, "resnet152": 42,
                 "inception_v4": 42, "densenet169": 41, "wide_resnet50_2": 34, "preact_resnet164": 29,
                 "resnet101": 26, "densenet121": 25, "inception_v3": 24, "se_resnet50": 23, "fractalnet": 18,
                 "resnet110": 18, "preact_resnet50": 16, "resnext50_32x4d": 15}


def zoo_params() -> list:
    """Every zoo name, the >100M-parameter ones marked `slow`; each its own pytest-xdist group,
    so that the sweep spreads over the workers (a file's tests otherwise share one), except the
    >100M-parameter ones: one group, one after another on one worker. Two of them at once on the
    2-core machine take three times as long each (measured: VGG-11 and VGG-16 entries 28 and 31 s
    alone, 86 and 83 s side by side), as every one of their steps moves half a gigabyte."""
    deep = pytest.mark.skipif(not DEEP_SWEEP, reason="1,202-layer net: over 10 min to quantize on one core; "
                                                     "run with ZOODEPLOY_DEEP_SWEEP=1")
    names = sorted(list_models(), key=lambda n: -SWEEP_SECONDS.get(n, 0))  # stable: the rest in zoo order
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
