"""`zoodeploy build` end to end in a real subprocess: a card with a selected variant, report.md
and pareto.png, figures that `zoodeploy evaluate` reproduces; clean one-line errors."""

import json
import subprocess
import sys

import pytest
import torch

from zoodeploy.bench.report import pareto_front
from zoodeploy.card import load_card


def zd(*args):
    return subprocess.run([sys.executable, "-m", "zoodeploy", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


def one_line_error(r, *needles):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.slow
def test_build_mobile_selects_the_fastest_variant_within_budget(tmp_path):
    out = tmp_path / "lenet5"
    r = zd("build", "lenet5", "--data", "digits", "--target", "mobile", "--epochs", "2", "--max-drop", "1.5",
           "--batch", "1,4", "--threads", "1", "--max-seconds", "2", "-o", out)
    assert r.returncode == 0, r.stderr
    stages = [ln.split(":")[0] for ln in r.stderr.splitlines() if ln.startswith("[") and ": " in ln]
    assert stages == [f"[{i}/7] {s}" for i, s in
                      enumerate(["train", "export", "optimize", "evaluate", "bench", "select", "report"], 1)]
    card = load_card(out)
    assert set(card.variants) == {"fp32", "fused", "int8", "int8-ort"}
    within = {n: v.latency["1"].p50_ms for n, v in card.variants.items() if v.accuracy.drop_pt <= 1.5}
    assert card.selected == min(within, key=within.get)
    assert card.provenance["build"]["target"] == "mobile" and card.provenance["build"]["select_batch"] == 1
    assert set(card.eager_latency) == {"1", "4"}
    assert all(set(v.latency) == {"1", "4"} for v in card.variants.values())
    md = (out / "report.md").read_text()
    assert f"**selected: `{card.selected}`**" in md and (out / "pareto.png").stat().st_size > 10_000
    # a reader reproduces every accuracy figure with `zoodeploy evaluate`
    r = zd("evaluate", out, "--json")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)["variants"]
    assert again == {n: v.accuracy.model_dump(mode="json") for n, v in card.variants.items()}
    points = {n: (v.latency["1"].p50_ms, v.accuracy.top1) for n, v in card.variants.items()}
    assert pareto_front(points)  # the plot's front is computed from these same figures


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_gpu_target_without_gpu_is_one_line_before_training(tmp_path):
    r = zd("build", "lenet5", "--target", "gpu", "-o", tmp_path / "x")
    one_line_error(r, "GPU", "zoodeploy[gpu]")
    assert not (tmp_path / "x").exists()  # refused before any work


@pytest.mark.parametrize("case", ["unknown-model", "epochs-0", "existing", "bad-batch", "negative-drop"])
def test_bad_build_input_is_one_line(case, tmp_path):
    args = ["build", "lenet5", "-o", tmp_path / "out"]
    needles = {"unknown-model": ["resnet50"], "epochs-0": ["--weights"], "existing": ["--force"],
               "bad-batch": ["--batch"], "negative-drop": ["--max-drop"]}[case]
    if case == "unknown-model":
        args[1] = "resnet5O"
    elif case == "epochs-0":
        args += ["--epochs", "0"]
    elif case == "existing":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "card.json").write_text("{}")
    elif case == "bad-batch":
        args += ["--batch", "1,x"]
    else:
        args += ["--max-drop", "-1"]
    one_line_error(zd(*args), *needles)
