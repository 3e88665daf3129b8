"""`zoodeploy evaluate | bench | check | report | build`: their JSON is the library's figures,
`build` runs the whole pipeline, and bad input is one line on stderr with exit 1. `evaluate` and
`build` run as real subprocesses; the rest in-process (cli_support.invoke_cli: the same error
handling, without starting Python for each). (The gate's failures on planted regressions are in
tests/test_gate.py.)"""

import json
import re
import shutil

import pytest
import torch
from cli_support import assert_one_line_error, invoke_cli, run_cli

from zoodeploy.card import load_card


def test_evaluate_bench_report_json(artifact):
    art = artifact("lenet5")
    r = run_cli("evaluate", art, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    fp32 = out["variants"]["fp32"]
    assert out["split"] == "test" and out["recorded_in_card"] is True
    assert fp32["n"] == 359 and fp32["drop_pt"] == 0 and set(fp32["per_class"]) == set(map(str, range(10)))
    assert load_card(art).variants["fp32"].accuracy.model_dump(mode="json") == fp32

    r = invoke_cli("bench", art, "--batch", "1,2", "--threads", "1", "--max-seconds", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["eager"]) == {"1", "2"} and set(out["variants"]["fp32"]) == {"1", "2"}
    row = out["variants"]["fp32"]["2"]
    assert row["speedup_vs_eager"] == pytest.approx(out["eager"]["2"]["p50_ms"] / row["p50_ms"])
    assert out["threads"] == 1 and out["peak_rss_mb"] > 0
    assert load_card(art).variants["fp32"].latency["2"].p50_ms == row["p50_ms"]

    r = invoke_cli("report", art, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"report": str(art / "report.md"), "pareto": str(art / "pareto.png")}


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")


@pytest.mark.parametrize("case", ["no-artifact", "unknown-variant", "bad-batch", "no-baseline", "no-figures",
                                  pytest.param("no-gpu", marks=NO_GPU)])
def test_bad_input_is_one_line(case, trained, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(trained("lenet5"), art)
    args, needles = {
        "no-artifact": (["evaluate", tmp_path / "nope"], ["not an artifact directory"]),
        "unknown-variant": (["evaluate", art, "--variants", "fp32,int4"], ["no variant 'int4'", "fp32"]),
        "bad-batch": (["bench", art, "--batch", "8,big"], ["--batch", "1,8,32"]),
        "no-baseline": (["check", art, "--max-drop", "1", "--max-slowdown", "1.5"],
                        ["no latency baseline", "--update-baseline"]),
        "no-figures": (["report", art], ["zoodeploy bench"]),
        "no-gpu": (["bench", art, "--device", "cuda"], ["GPU", "zoodeploy[gpu]"]),
    }[case]
    assert_one_line_error(invoke_cli(*args), *needles)


@pytest.mark.slow
def test_build_mobile_selects_the_smallest_int8_within_budget_and_logs_its_progress(tmp_path):
    out = tmp_path / "lenet5"
    r = run_cli("build", "lenet5", "--data", "digits", "--target", "mobile", "--epochs", "2", "--max-drop", "1.5",
                "--batch", "1,4", "--threads", "1", "--max-seconds", "2", "-o", out)
    assert r.returncode == 0, r.stderr
    # stderr is a log here (not a terminal): every line timestamped, one per epoch and timed batch size
    lines = [ln.split(" ", 1)[1] for ln in r.stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d ", ln)]
    stages = [ln.split(":")[0] for ln in lines if ln.startswith("[") and ": " in ln]
    assert stages == [f"[{i}/5] {s}" for i, s in enumerate(["train", "export", "optimize", "select", "report"], 1)]
    assert any(ln.startswith("lenet5 epoch 2/2: ") and "ETA" in ln for ln in lines)
    assert any(ln.startswith("timed batch 4: ") and "ETA" in ln for ln in lines)
    card = load_card(out)
    assert set(card.variants) == {"fp32", "fused", "int8", "int8-ort"}
    # an ARM target is chosen by size (x86 latency of an ARM-scheme model means nothing for it)
    sizes = {n: (out / v.file).stat().st_size for n, v in card.variants.items()
             if v.precision in ("int8", "mixed") and v.accuracy.drop_pt <= 1.5}
    assert card.selected == min(sizes, key=sizes.get) and card.target_isa == "arm64"
    assert any("timing not measured on the target (arm64)" in why for why in card.provenance.build.why)
    assert card.provenance.build.target == "mobile" and card.provenance.build.select_batch == 1
    assert set(card.eager_latency) == {"1", "4"}
    assert all(set(v.latency) == {"1", "4"} for v in card.variants.values())
    md = (out / "report.md").read_text()
    assert f"**selected: `{card.selected}`**" in md and (out / "pareto.png").stat().st_size > 10_000
    # a reader reproduces every accuracy figure with `zoodeploy evaluate`
    r = invoke_cli("evaluate", out, "--json")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)["variants"]
    assert again == {n: v.accuracy.model_dump(mode="json") for n, v in card.variants.items()}


@pytest.mark.parametrize("case", ["unknown-model", "existing"])
def test_bad_build_input_is_one_line(case, tmp_path):
    out = tmp_path / "out"
    if case == "existing":
        out.mkdir()
        (out / "card.json").write_text("{}")
    r = invoke_cli("build", "resnet5O" if case == "unknown-model" else "lenet5", "-o", out)
    assert_one_line_error(r, "resnet50" if case == "unknown-model" else "--force")
