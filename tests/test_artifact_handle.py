"""The Artifact handle: the card read once and re-read only inside `update()`, variant files hashed
once per process, and one rule for which variant runs, which predict, the service, package and the
model store all give (the same variant, or the same one-line refusal)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import zoodeploy.artifact as artifact_module
import zoodeploy.card as card_module
from zoodeploy.artifact import Artifact, resolve_variant
from zoodeploy.card import load_card
from zoodeploy.errors import ArtifactError

# `zoodeploy ARGS` with an audit hook that counts every open() of a card.json (writes go to a temp
# file renamed over it, so each count is a read)
COUNT_CARD_OPENS = """
import runpy, sys
opens = []
sys.addaudithook(lambda event, args: event == "open" and str(args[0]).endswith("card.json")
                 and opens.append(str(args[0])))
sys.argv = ["zoodeploy", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("zoodeploy", run_name="__main__")
except SystemExit as e:
    code = e.code
print(f"card.json opened {len(opens)} times", file=sys.stderr)
sys.exit(code)
"""


def test_the_card_is_read_once_and_reread_only_in_update(artifact, monkeypatch):
    path = artifact("lenet5")
    reads = []
    real = card_module.load_card
    counting = lambda path: reads.append(path) or real(path)  # noqa: E731
    monkeypatch.setattr(artifact_module, "load_card", counting)
    monkeypatch.setattr(card_module, "load_card", counting)  # what update() re-reads with
    art = Artifact(path)
    assert art.card is art.card and art.card.name == "lenet5" and len(reads) == 1
    with art.update() as card:
        card.selected = "fp32"
    assert len(reads) == 2 and art.card.selected == "fp32" and load_card(art.path).selected == "fp32"
    assert Artifact.of(art) is art and Artifact.of(art.path).path == art.path


def test_a_variant_file_is_hashed_once_per_handle_and_refused_when_changed(artifact, monkeypatch):
    path = artifact("lenet5")
    hashed = []
    real = artifact_module.sha256_file
    monkeypatch.setattr(artifact_module, "sha256_file", lambda path: hashed.append(path) or real(path))
    art = Artifact(path)
    assert art.file("fp32") == art.file("fp32") == path / "fp32.onnx" and len(hashed) == 1
    with open(path / "fp32.onnx", "ab") as f:
        f.write(b"\0")
    assert art.file("fp32") == path / "fp32.onnx"  # this handle checked it already
    with pytest.raises(ArtifactError, match="does not match the sha256 in the card"):
        Artifact(path).file("fp32")


def test_one_rule_for_which_variant_runs(trained):
    card = load_card(trained("lenet5")).model_copy(deep=True)
    with pytest.raises(ArtifactError, match="the card selects no variant; select one with `zoodeploy build`"):
        resolve_variant(card)
    with pytest.raises(ArtifactError, match="the card selects no variant"):
        resolve_variant(card, "selected")
    assert resolve_variant(card, "fp32").name == "fp32"
    card.selected = "fp32"
    assert resolve_variant(card).name == resolve_variant(card, "selected").name == "fp32"
    with pytest.raises(ArtifactError, match="no variant 'int9'"):
        resolve_variant(card, "int9")


def test_optimize_fp16_opens_the_card_at_most_four_times(trained, tmp_path):
    art = tmp_path / "lenet5"
    shutil.copytree(trained("lenet5"), art)
    r = subprocess.run([sys.executable, "-c", COUNT_CARD_OPENS, "optimize", str(art), "--passes", "fp16",
                        "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    opens = int(r.stderr.rsplit("card.json opened ", 1)[1].split()[0])
    card = load_card(art)
    assert "fp16" in card.variants and card.variants["fp16"].latency and card.variants["fp16"].accuracy
    assert 1 <= opens <= 4, r.stderr[-2000:]


def test_a_card_without_selection_gets_the_same_refusal_everywhere(artifact, tmp_path, monkeypatch):
    """predict, the service's plan, package and `bento import` share `resolve_variant`: for a card
    that selects nothing each refuses with the same one line (the service and the store once
    served the best measured variant instead, predict and package refused)."""
    from zoodeploy.package import package
    from zoodeploy.predict import PredictConfig, predict
    from zoodeploy.serve.config import ServeConfig
    from zoodeploy.serve.served import Plan
    from zoodeploy.serve.store import import_artifact
    from PIL import Image
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    art = artifact("lenet5")
    png = tmp_path / "seven.png"
    Image.new("RGB", (8, 8), (255, 255, 255)).save(png)
    assert load_card(art).selected is None
    refusals = {}
    for way, call in {
        "predict": lambda: predict(art, [png], PredictConfig(out=tmp_path / "p.csv")),
        "service": lambda: Plan.make(ServeConfig(artifact=str(art))),
        "package": lambda: package(art, tmp_path / "b.tar.gz"),
        "bento import": lambda: import_artifact(art),
    }.items():
        with pytest.raises(ArtifactError) as e:
            call()
        refusals[way] = str(e.value)
    assert len(set(refusals.values())) == 1, refusals
    (line,) = set(refusals.values())
    assert "\n" not in line and "the card selects no variant" in line and "fp32" in line
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "b.tar.gz").exists()
    # with a selection they take it (the store's import of the selection: tests/serve/test_store.py)
    with Artifact(art).update() as card:
        card.selected = "fp32"
    assert Plan.make(ServeConfig(artifact=str(art))).variant == "fp32"
    assert predict(art, [png], PredictConfig(out=tmp_path / "p.csv")).variant == "fp32"


def test_remaking_a_variant_with_the_same_bytes_keeps_its_latency_rows(optimized, tmp_path):
    """Re-running `optimize` re-times batch 1 only: the batch-8 row measured earlier for a variant
    remade with the very same bytes stays; a file with other bytes starts with no figures."""
    from zoodeploy.card import LatencyStats
    from zoodeploy.optimize import Measure, OptimizeConfig, optimize
    art = tmp_path / "lenet5"
    shutil.copytree(optimized("lenet5"), art)
    row = LatencyStats(batch=8, runs=50, p50_ms=1.0, p90_ms=1.1, p99_ms=1.2, mean_ms=1.0, throughput=8000.0)
    with Artifact(art).update() as card:
        card.variants["fused"].latency["8"] = row
        before = card.variants["fused"].sha256
    optimize(art, OptimizeConfig(passes=("fuse",), max_drop=None, bench=False, threads=1),
             Measure(evaluate=False, bench=False))
    fused = load_card(art).variants["fused"]
    assert fused.sha256 == before and fused.latency["8"] == row
    other = fused.model_copy(update={"sha256": "0" * 64, "latency": {}})
    Artifact(art).add_variant(other)
    assert load_card(art).variants["fused"].latency == {}
