"""The build pipeline as a library: its config is checked before any work, a GPU target fails
before training where there is no GPU, and the selection rule picks the fastest variant within
the budget. (The whole pipeline runs end to end through the CLI in tests/cli/test_eval_cli.py.)"""

import pytest
import torch

from zoodeploy.build import BuildConfig, Target, build, select_variant
from zoodeploy.card import Accuracy, LatencyStats, ModelCard, Variant
from zoodeploy.errors import GateError, MissingDependencyError, ZoodeployError
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe


def _card(figures: dict[str, tuple[float, float]]) -> ModelCard:
    """A card whose variants have (drop_pt, p50_ms) at batch 1."""
    def variant(name, drop, ms):
        stats = LatencyStats(batch=1, runs=100, p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms, throughput=1000 / ms)
        return Variant(name=name, file=f"{name}.onnx", sha256="-", precision="fp32", runtime="onnxruntime",
                       made_by="test", recipe=CopyRecipe(source="test"),
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
