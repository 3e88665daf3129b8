"""Every zoo model exports and validates; one entry per set of layer kinds then goes through
fuse + int8, each variant landing verified, with accuracy and drift (the deeper and wider forms
of an entry, zoo_support.QUANTIZED_AS, stop after export: their fused and int8 graphs would hold
only more of the same patterns).

Small inputs (the `zoo_artifact` fixture: random init, digits, max(32, the architecture's
minimum) px). The >100M-parameter entries (the VGGs) are marked `slow`: their 0.5 GB
classifiers make every load, save, hash and session cost tens of seconds on one core.
"""

from __future__ import annotations

import onnx
import pytest

from zoodeploy.artifact import Artifact
from zoodeploy.card import load_card
from zoodeploy.models.zoo import list_models
from zoodeploy.optimize import OptimizeConfig, optimize
from zoo_support import QUANTIZED_AS, assert_exported, zoo_params


@pytest.mark.parametrize("name", zoo_params(sorted(QUANTIZED_AS)))
def test_deeper_and_wider_forms_export_and_validate(zoo_artifact, name):
    assert_exported(zoo_artifact(name), name)


@pytest.mark.parametrize("name", zoo_params([n for n in list_models() if n not in QUANTIZED_AS]))
def test_each_kind_of_model_exports_validates_fuses_and_quantizes(zoo_artifact, name):
    artifact = zoo_artifact(name)
    assert_exported(artifact, name)
    cfg = OptimizeConfig(passes=("fuse", "int8"), calib_size=8, max_drop=None, bench=False, threads=1)
    variants = {v.name: v for v in optimize(artifact, cfg)}
    assert set(variants) == {"fused", "int8"}
    card = load_card(artifact)
    for v in variants.values():
        Artifact(artifact).file(v)  # the file is there and matches the sha256 in the card
        assert card.variants[v.name].sha256 == v.sha256
        acc = v.accuracy
        assert acc is not None and acc.split == "test" and acc.n == card.data.counts["test"]
        assert acc.drop_pt is not None and acc.agreement is not None and acc.max_abs_err is not None
    fused = variants["fused"].graph
    assert fused.op_counts_before and "BatchNormalization" not in fused.op_counts  # none left, folded or Mul+Add
    assert variants["fused"].accuracy.agreement == 100.0  # fusion changes rounding only
    int8 = onnx.load(str(Artifact(artifact).file(variants["int8"])))
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, f"{name}: nothing was quantized"
