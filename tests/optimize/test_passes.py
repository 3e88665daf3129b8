"""Passes as a registry: names, what they need, and the order they run in."""

from __future__ import annotations

import importlib

import pytest

from zoodeploy.card import ModelCard, Precision, Variant
from zoodeploy.errors import OptimizeError, UnknownNameError
from zoodeploy.optimize import OptimizeConfig
from zoodeploy.optimize.passes import PASSES, Pass, add_pass, parse_passes, plan_passes
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe


def card_with(*variants: str) -> ModelCard:
    """A hand-made card holding `variants` (no files: planning reads names only)."""
    return ModelCard(name="m", num_classes=2, labels=["a", "b"], preprocessing=Preprocessing.for_size(8),
                     variants={n: Variant(name=n, file=f"{n}.onnx", sha256="0" * 64, precision="fp32",
                                          runtime="onnxruntime", made_by="test", recipe=CopyRecipe(source="x"))
                               for n in variants})


@pytest.mark.parametrize("name", list(PASSES))
def test_every_pass_names_a_function_that_exists(name):
    p = PASSES.get(name)
    module, _, func = p.target.partition(":")
    assert callable(getattr(importlib.import_module(module), func)), p.target
    assert all(d in PASSES for d in p.needs)


def test_a_pass_that_needs_another_variant_brings_its_pass_when_the_card_lacks_it():
    assert [p.name for p in plan_passes(["ort-format"], card_with("fp32"))] == ["int8", "ort-format"]
    assert [p.name for p in plan_passes(["ort-format"], card_with("fp32", "int8"))] == ["ort-format"]


def test_passes_run_in_registry_order_whatever_order_they_are_asked_in():
    order = [p.name for p in plan_passes(["fp16", "int8", "fuse"], card_with("fp32"))]
    assert order == ["fuse", "int8", "fp16"]


def test_unknown_or_empty_pass_lists_are_one_line_errors():
    with pytest.raises(UnknownNameError, match="unknown pass 'fuze'; did you mean fuse"):
        parse_passes("fuze,int8")
    with pytest.raises(OptimizeError, match="no pass named"):
        OptimizeConfig(passes=())
    assert parse_passes("fuse, int8,fuse") == ("fuse", "int8")


def test_a_duplicate_pass_name_is_an_error():
    with pytest.raises(ValueError, match="duplicate pass name"):
        add_pass(Pass("fuse", "fused", "zoodeploy.optimize.fuse:run_pass", "fusing", Precision.fp32))
