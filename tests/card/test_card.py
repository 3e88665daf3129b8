"""The card as the contract between stages: typed all the way down, old cards migrate on read,
and concurrent commands on one artifact lose nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoodeploy.card import (ModelCard, Precision, Runtime, Validation, load_card, save_card, update_card)
from zoodeploy.errors import ArtifactError
from zoodeploy.recipes import (ExportRecipe, FuseRecipe, OrtFormatRecipe, QuantRecipe, RECIPES, parse_recipe)

SCHEMA1 = Path(__file__).resolve().parents[1] / "data" / "card_schema1.json"  # written by schema-1 code


def test_a_schema1_card_loads_typed_with_every_figure(tmp_path):
    old = json.loads(SCHEMA1.read_text())
    assert old["schema_version"] == 1
    card = ModelCard.model_validate(old)
    assert card.schema_version == 3 and list(card.variants) == ["fp32", "fused", "int8", "int8-ort"]
    fp32, fused, int8, ort = (card.variants[n] for n in card.variants)
    assert isinstance(fp32.recipe, ExportRecipe) and fp32.recipe.batch == "dynamic" and fp32.recipe.opset == 18
    assert [c.batch for c in fp32.validation.comparisons] == [1, 8] and fp32.graph.nodes > 0 and fp32.seconds > 0
    assert any("full_check" in c for c in fp32.validation.checks)
    assert isinstance(fused.recipe, FuseRecipe) and fused.graph.op_counts_before and fused.validation.reference
    assert isinstance(int8.recipe, QuantRecipe) and int8.recipe.control.split == "val"
    assert int8.precision in (Precision.int8, Precision.mixed) and int8.runtime is Runtime.onnxruntime
    assert isinstance(ort.recipe, OrtFormatRecipe) and set(ort.recipe.mobile_usability.eps) >= {"NNAPI"}
    for v in card.variants.values():  # every latency row kept, its settings typed
        assert set(v.latency) == set(old["variants"][v.name]["latency"])
        assert all(s.settings.runtime == "onnxruntime" and s.settings.run_id for s in v.latency.values())
    assert card.provenance.build.target == "mobile" and card.provenance.versions["torch"]
    assert card.eager_latency["1"].settings.runtime == "torch"
    # and it saves as the current schema, which loads back equal
    (tmp_path / "a").mkdir()
    save_card(tmp_path / "a", card)
    again = load_card(tmp_path / "a")
    assert again == card and json.loads((tmp_path / "a" / "card.json").read_text())["schema_version"] == 3


def test_recipes_are_typed_by_kind_and_refuse_unknown_keys():
    assert {"export", "fuse", "int8", "fp16", "ort-format", "tensorrt", "torch-tensorrt", "copy"} <= set(RECIPES)
    r = parse_recipe({"kind": "fuse", "ort_level": "ORT_ENABLE_BASIC", "onnxruntime": "1.20"})
    assert isinstance(r, FuseRecipe)
    with pytest.raises(Exception, match="extra|not permitted"):
        parse_recipe({"kind": "fuse", "ort_level": "ORT_ENABLE_BASIC", "onnxruntime": "1.20", "target": "gpu"})
    with pytest.raises(Exception, match="unknown recipe kind 'nope'"):
        parse_recipe({"kind": "nope"})


def test_a_malformed_card_is_a_one_line_error(tmp_path):
    (tmp_path / "card.json").write_text('{"schema_version": 2, "name": "x"}')
    with pytest.raises(ArtifactError, match="not a valid model card"):
        load_card(tmp_path)


def test_validation_figures_summarise_the_worst_comparison():
    v = Validation(reference="PyTorch", comparisons=[
        {"batch": 1, "samples": 4, "max_abs_err": 1e-6, "max_rel_err": 1e-7, "top1_agreement": 100, "top5_agreement": 100},
        {"batch": 8, "samples": 8, "max_abs_err": 3e-6, "max_rel_err": 2e-7, "top1_agreement": 87.5, "top5_agreement": 100}])
    assert v.worst_abs_err == 3e-6 and v.min_top1_agreement == 87.5


WRITER = """
import sys
from zoodeploy.card import update_card
art, i = sys.argv[1], int(sys.argv[2])
for k in range(20):
    with update_card(art) as card:
        card.variants["fp32"].notes.append(f"writer {i} note {k}")
"""


def test_concurrent_card_updates_lose_nothing(optimized, tmp_path):
    """Eight processes, twenty read-modify-writes each, at the same time: all 160 notes land."""
    art = tmp_path / "a"
    shutil.copytree(optimized("lenet5"), art)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(art), str(i)]) for i in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    notes = load_card(art).variants["fp32"].notes
    assert sorted(notes) == sorted(f"writer {i} note {k}" for i in range(8) for k in range(20))


def test_concurrent_commands_on_one_artifact_keep_every_figure(optimized, tmp_path):
    """`evaluate`, `bench --batch 1` and `bench --batch 8` at once (the case that used to lose the
    batch-1 figures): each figure is in the card afterwards."""
    art = tmp_path / "a"
    shutil.copytree(optimized("lenet5"), art)
    with update_card(art) as card:  # start from a card with no figures at all
        for v in card.variants.values():
            v.accuracy, v.latency = None, {}
        card.eager_latency = {}
    short = ["--max-seconds", "1", "--threads", "1"]
    cmds = [["evaluate", str(art)], ["bench", str(art), "--batch", "1", *short],
            ["bench", str(art), "--batch", "8", *short]]
    procs = [subprocess.Popen([sys.executable, "-m", "zoodeploy", *c], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for c in cmds]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    card = load_card(art)
    for v in card.variants.values():
        assert v.accuracy is not None and set(v.latency) == {"1", "8"}, (v.name, v.latency.keys())
    assert set(card.eager_latency) == {"1", "8"}
