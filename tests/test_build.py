"""The build pipeline as a library: its config is checked before any work, a GPU target fails
before training where there is no GPU, the selection rule picks the fastest variant within the
budget, and a CPU build times its OpenVINO rows with the ONNX Runtime ones and selects across
both (ONNX Runtime rows only where openvino does not import). (The whole pipeline runs end to end
through the CLI in tests/cli/test_eval_cli.py.)"""

import json
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

from zoodeploy.bench.latency import BenchConfig
from zoodeploy.artifact import select_variant
from zoodeploy.build import TARGET_EXTRA_PASSES, TARGET_PASSES, BuildConfig, build
from zoodeploy.card import Accuracy, LatencyStats, ModelCard, Runtime, Variant
from zoodeploy.errors import GateError, MissingDependencyError, ZoodeployError
from zoodeploy.target import Target, detect_isa
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe

# short timing: these tests check which rows are timed together and what is selected, not speed
QUICK = BenchConfig(warmup=2, window=5, window_seconds=0.02, min_runs=10, max_runs=60, max_seconds=3.0)


def _card(figures: dict[str, tuple[float, float]]) -> ModelCard:
    """A card whose variants have (drop_pt, p50_ms) at batch 1; `-ov` rows run on OpenVINO."""
    def variant(name, drop, ms):
        stats = LatencyStats(batch=1, runs=100, p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms, throughput=1000 / ms)
        runtime = "openvino" if name.endswith("-ov") else "onnxruntime"
        return Variant(name=name, file=f"{name.removesuffix('-ov')}.onnx", sha256="-", precision="fp32",
                       runtime=runtime, made_by="test", recipe=CopyRecipe(source="test"),
                       accuracy=Accuracy(n=100, top1=90 - drop, top5=99, drop_pt=drop),
                       latency={"1": stats})
    return ModelCard(name="lenet5", num_classes=10, labels=list("0123456789"), preprocessing=Preprocessing(32, 32),
                     variants={n: variant(n, *f) for n, f in figures.items()})


def test_selects_the_fastest_variant_within_the_budget():
    card = _card({"fp32": (0.0, 1.0), "fused": (0.0, 0.8), "int8": (0.6, 0.5), "int8-ort": (2.0, 0.4)})
    assert select_variant(card, 1.0, 1) == "int8"  # int8-ort is faster but 2 pt off
    assert select_variant(card, 0.5, 1) == "fused"
    assert select_variant(card, 3.0, 1) == "int8-ort"
    with pytest.raises(GateError, match="batch-8"):
        select_variant(card, 1.0, 8)


def test_selection_is_across_runtimes():
    card = _card({"fp32": (0.0, 1.0), "fused": (0.0, 0.8), "int8": (0.3, 0.5), "int8-ov": (0.3, 0.4),
                  "fused-ov": (0.0, 0.6)})
    assert select_variant(card, 1.0, 1) == "int8-ov"
    assert select_variant(card, 0.1, 1) == "fused-ov"


def _lenet5_build(trained, out, **kw) -> BuildConfig:
    """A real CPU build of lenet5 from the suite's trained weights (no training), timed briefly."""
    return BuildConfig(model="lenet5", out=out, epochs=0, weights=str(trained("lenet5") / "checkpoint.pt"),
                       batches=(1,), threads=1, timing=QUICK, **kw)


def test_cpu_build_times_openvino_rows_with_the_others_and_selects_the_fastest_within_budget(trained, tmp_path):
    pytest.importorskip("openvino")
    from zoodeploy.optimize.openvino import has_bf16
    lines: list[str] = []
    card = build(_lenet5_build(trained, tmp_path / "b"), say=lines.append)
    bf16 = has_bf16(detect_isa())
    ov = {n for n, v in card.variants.items() if v.runtime is Runtime.openvino}
    # with BF16: bf16 and int8-bf16; mixed-bf16 needs int8-mixed, which LeNet (no depthwise conv) cannot make
    assert ov == {"fused-ov", "int8-ov"} | ({"bf16", "int8-bf16"} if bf16 else set())
    assert card.provenance.build.passes == [*TARGET_PASSES[Target.cpu], "ov-fused", "ov-int8",
                                            *["bf16", "int8-bf16"] * bf16]
    # every row measured, all in one run, each timed interleaved with all the others and eager
    rows = {n: v.latency["1"] for n, v in card.variants.items()}
    assert all(v.accuracy is not None and v.accuracy.drop_pt is not None for v in card.variants.values())
    assert len({s.settings.run_id for s in rows.values()} | {card.eager_latency["1"].settings.run_id}) == 1
    for n, s in rows.items():
        assert set(s.settings.interleaved_with) == (set(rows) | {"eager"}) - {n}
    assert rows["int8-ov"].settings.runtime == "openvino" and rows["int8"].settings.runtime == "onnxruntime"
    # the selection, recomputed from the card's own figures: the fastest stable row within the budget
    within = {n: s.p50_ms for n, s in rows.items() if card.variants[n].accuracy.drop_pt <= 1.0 and s.settings.stable}
    if within:
        assert card.selected == min(within, key=within.get)
    else:  # nothing stable: the most accurate, never a shaky "fastest"
        assert card.variants[card.selected].accuracy.drop_pt == min(v.accuracy.drop_pt for v in card.variants.values())
    (optimize_line,) = [ln for ln in lines if ln.startswith("[3/5] optimize:")]
    skipped = "not made: bf16, int8-bf16, mixed-bf16 (this CPU is"
    assert (skipped in optimize_line) is not bf16, optimize_line  # skipped, no failure
    (select_line,) = [ln for ln in lines if ln.startswith("[4/5] select:")]
    assert select_line.startswith(f"[4/5] select: {card.selected} by {'latency' if within else 'accuracy'} (")
    assert f"; {card.variants[card.selected].runtime}: " in select_line


def test_cpu_build_without_openvino_selects_among_onnxruntime_rows(trained, tmp_path):
    out = tmp_path / "b"
    cfg = _lenet5_build(trained, out)
    code = f"""
import json, sys
sys.modules['openvino'] = None  # what an image without the package looks like to Python
from zoodeploy.bench.latency import BenchConfig
from zoodeploy.build import BuildConfig, build
lines = []
card = build(BuildConfig(model='lenet5', out={str(out)!r}, epochs=0, weights={cfg.weights!r}, batches=(1,),
                         threads=1, timing=BenchConfig(**{asdict(QUICK)!r})), say=lines.append)
print(json.dumps({{'selected': card.selected, 'runtimes': {{n: str(v.runtime) for n, v in card.variants.items()}},
                  'timed': sorted(n for n, v in card.variants.items() if '1' in v.latency),
                  'passes': card.provenance.build.passes, 'lines': lines}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(got["runtimes"].values()) == {"onnxruntime"} and got["timed"] == sorted(got["runtimes"])
    assert got["selected"] in got["runtimes"] and got["passes"] == list(TARGET_PASSES[Target.cpu])
    (optimize_line,) = [ln for ln in got["lines"] if ln.startswith("[3/5] optimize:")]
    skipped = ", ".join(TARGET_EXTRA_PASSES[Target.cpu])
    assert f"not made: {skipped} (OpenVINO (import failed:" in optimize_line, optimize_line
    assert "pip install 'openvino" in optimize_line


@pytest.mark.slow  # trains (one epoch)
def test_a_build_preprocesses_each_image_once(tmp_path, monkeypatch):
    """Training, calibration, the fusion and OpenVINO checks, accuracy control, evaluation and timing
    all read the one split the build made: every image of the data set is preprocessed once."""
    from zoodeploy.models import data
    from zoodeploy.optimize import data as optimize_data
    calls = []
    real = data.preprocess
    counting = lambda image, prep: calls.append(prep) or real(image, prep)  # noqa: E731
    monkeypatch.setattr(data, "preprocess", counting)
    monkeypatch.setattr(optimize_data, "preprocess", counting, raising=False)
    card = build(BuildConfig(model="lenet5", out=tmp_path / "b", epochs=1, batches=(1,), threads=1, timing=QUICK))
    assert card.selected and all(v.accuracy is not None for v in card.variants.values())
    assert len(calls) == sum(card.data.counts.values()) == 1797, len(calls)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_gpu_target_without_gpu_fails_before_training(tmp_path):
    with pytest.raises(MissingDependencyError, match="zoodeploy\\[gpu\\]"):
        build(BuildConfig(model="lenet5", out=tmp_path / "x", target=Target.gpu))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad, needle", [(dict(epochs=0), "--weights"), (dict(max_drop=-1), "--max-drop"),
                                         (dict(batches=(0,)), "--batch"), (dict(target="tpu"), "tpu")])
def test_bad_build_config_is_refused_before_any_work(bad, needle, tmp_path):
    with pytest.raises(ZoodeployError, match=needle):
        BuildConfig(model="lenet5", out=tmp_path / "out", **bad)
    assert not (tmp_path / "out").exists()
