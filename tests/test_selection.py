"""The selection a user can defend, and variants that know their source: unstable timings are never
chosen on speed, the objective and a latency budget are honoured, a mobile target is chosen by size,
a stale variant (its source changed) is left out and refused by the one variant rule, and a pass or
variant name means the same thing everywhere. Cards are made in memory: no model runs."""

import pytest

from zoodeploy.artifact import (Objective, rebuild_command, resolve_variant, select, select_variant, stale_reason,
                                variant_name)
from zoodeploy.card import Accuracy, LatencyStats, ModelCard, RunSettings, ThroughputStats, Variant
from zoodeploy.errors import ArtifactError, GateError, UnknownNameError
from zoodeploy.optimize.passes import parse_passes, pass_name
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe, OrtFormatRecipe, QuantRecipe


def _row(batch: int, ms: float, stable: bool = True) -> LatencyStats:
    return LatencyStats(batch=batch, runs=100, p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms,
                        throughput=1000 * batch / ms, settings=RunSettings(runtime="onnxruntime", stable=stable))


def _variant(name, drop, rows, precision="fp32", recipe=None, sha=None):
    return Variant(name=name, file=f"{name}.onnx", sha256=sha or f"sha-{name}", precision=precision,
                   runtime="onnxruntime", made_by="test", recipe=recipe or CopyRecipe(source="test"),
                   accuracy=Accuracy(n=100, top1=90 - drop, top5=99, drop_pt=drop),
                   latency={str(r.batch): r for r in rows})


def _card(*variants) -> ModelCard:
    return ModelCard(name="lenet5", num_classes=10, labels=list("0123456789"), preprocessing=Preprocessing(32, 32),
                     variants={v.name: v for v in variants})


def test_an_unstable_timing_is_never_chosen_on_speed_and_the_selection_says_why():
    card = _card(_variant("fp32", 0.0, [_row(1, 1.0)]), _variant("fused", 0.0, [_row(1, 0.8)]),
                 _variant("int8", 0.3, [_row(1, 0.2, stable=False)], "int8"))
    chosen = select(card, 1.0, 1)
    assert chosen.name == "fused"  # int8 "looks" 4x faster, on figures that never settled
    assert "int8 not chosen on speed: latency unstable" in chosen.line()
    assert select_variant(card, 1.0, 1) == "fused"


def test_with_no_stable_timing_in_the_budget_the_most_accurate_is_chosen_and_said():
    card = _card(_variant("fp32", 0.0, [_row(1, 1.0, False)]), _variant("int8", 0.3, [_row(1, 0.2, False)], "int8"))
    chosen = select(card, 1.0, 1)
    assert chosen.name == "fp32" and "no variant within the budget has a stable timing" in chosen.line()
    assert chosen.line().startswith("fp32 by accuracy (+0.00 pt vs fp32)")


def test_throughput_objective_and_latency_budget():
    card = _card(_variant("fp32", 0.0, [_row(1, 1.0), _row(32, 10.0)]),  # 3,200 img/s at 32
                 _variant("int8", 0.3, [_row(1, 0.6), _row(32, 16.0)], "int8"))  # 2,000 img/s at 32
    assert select(card, 1.0, 1).name == "int8"
    by_throughput = select(card, 1.0, 1, objective="throughput")
    assert by_throughput.name == "fp32" and "3,200 img/s at batch 32" in by_throughput.figure
    assert select(card, 1.0, 1, objective=Objective.throughput, max_latency_ms=0.8).name == "int8"
    with pytest.raises(GateError, match="within 0.5 ms"):
        select(card, 1.0, 1, max_latency_ms=0.5)


def test_throughput_objective_uses_the_best_throughput_found_and_never_an_unsettled_one():
    """`bench --throughput` found 4,000 img/s for int8 with two requests in flight: that beats fp32's
    best batch row; an unstable record is not chosen on speed, like an unstable latency row."""
    card = _card(_variant("fp32", 0.0, [_row(1, 1.0), _row(32, 10.0)]),  # 3,200 img/s at 32
                 _variant("int8", 0.3, [_row(1, 0.6), _row(32, 16.0)], "int8"))  # 2,000 img/s at 32
    card.variants["int8"].throughput = ThroughputStats(throughput=4000.0, batch=8, streams=2, threads=2, runs=50,
                                                       settings=RunSettings(runtime="openvino", stable=True))
    chosen = select(card, 1.0, 1, objective="throughput")
    assert chosen.name == "int8" and chosen.figure == "4,000 img/s at batch 8 x 2 in flight"
    card.variants["int8"].throughput.settings.stable = False
    chosen = select(card, 1.0, 1, objective="throughput")
    assert chosen.name == "fp32" and "int8 not chosen on speed" in chosen.line()
    assert select(card, 1.0, 1).name == "int8"  # latency still reads the batch-1 rows


def test_a_mobile_target_is_chosen_by_size_int8_first_and_says_timing_was_not_measured_there():
    card = _card(_variant("fp32", 0.0, [_row(1, 1.0)]), _variant("fused", 0.0, [_row(1, 0.5)]),
                 _variant("int8", 0.4, [_row(1, 2.0)], "int8"), _variant("int8-ort", 0.4, [], "int8"),
                 _variant("int8-bad", 3.0, [], "int8"))
    card.target_isa = "arm64"
    sizes = {"fp32": 4000, "fused": 3900, "int8": 1200, "int8-ort": 1100, "int8-bad": 900}
    chosen = select(card, 1.0, 1, objective="size", sizes=sizes)
    assert chosen.name == "int8-ort"  # x86 latency (fused fastest here) plays no part
    assert "timing not measured on the target (arm64)" in chosen.line()


def _chain(fp32_sha="a", int8_src_sha="a", ort_src_sha="i"):
    """fp32 -> int8 -> int8-ort, each recipe holding the sha256 its source had when it was read."""
    quant = dict(scheme="S8S8", scheme_reason="-", activation_type="QInt8", weight_type="QInt8", reduce_range=False,
                 per_channel=True, symmetric_activations=True, calibration="minmax", calib_size=8, calib_data="-",
                 onnxruntime="1")
    return _card(
        _variant("fp32", 0.0, [_row(1, 1.0)], sha=fp32_sha),
        _variant("int8", 0.2, [_row(1, 0.5)], "int8", sha="i", recipe=QuantRecipe(
            source="fp32.onnx", made_by_pass="int8", source_variant="fp32", source_sha256=int8_src_sha, **quant)),
        _variant("int8-ort", 0.2, [_row(1, 0.4)], "int8", sha="o", recipe=OrtFormatRecipe(
            source="int8", made_by_pass="ort-format", source_variant="int8", source_sha256=ort_src_sha,
            required_operators_config="x", required_operators_config_sha256="-", onnxruntime="1")))


def test_a_variant_whose_source_changed_is_stale_refused_and_left_out_of_the_selection():
    assert stale_reason(_chain(), "int8-ort") is None
    card = _chain(ort_src_sha="old")  # int8 was rebuilt after int8-ort was made from it
    assert stale_reason(card, "int8-ort") == "its source 'int8' was rebuilt after it was made"
    with pytest.raises(ArtifactError, match=r"'int8-ort' is stale: .* rebuild it with "
                                            r"`zoodeploy optimize art/x --passes ort-format`"):
        resolve_variant(card, "int8-ort", where="art/x")
    chosen = select(card, 1.0, 1)
    assert chosen.name == "int8" and "int8-ort left out: stale" in chosen.line()


def test_staleness_follows_the_chain_and_the_selected_variant_is_refused_too():
    card = _chain(int8_src_sha="before")  # fp32 re-exported: int8, and int8-ort made from it, are stale
    assert "source 'int8' is stale" in stale_reason(card, "int8-ort")
    card.selected = "int8-ort"
    with pytest.raises(ArtifactError, match="stale"):
        resolve_variant(card)
    assert rebuild_command(card, "int8") == "zoodeploy optimize ARTIFACT --passes int8"
    assert select(card, 1.0, 1).name == "fp32"


def test_pass_and_variant_names_are_taken_for_each_other_with_a_did_you_mean():
    assert pass_name("int8-ov") == "ov-int8" and pass_name("fused") == "fuse" and pass_name("int8-ort") == "ort-format"
    assert parse_passes("fused,int8,int8-ort") == ("fuse", "int8", "ort-format")
    with pytest.raises(UnknownNameError, match="did you mean ov-int8"):
        pass_name("ov-int9")
    card = _chain()
    assert variant_name(card, "ort-format") == "int8-ort"
    assert resolve_variant(card, "ort-format").name == "int8-ort"
    with pytest.raises(ArtifactError, match="did you mean int8-ort"):
        variant_name(card, "int8-orts")
