"""`zoodeploy evaluate | bench | check | report` through real subprocesses: their JSON is the
library's figures, and bad input is one line on stderr with exit 1."""

import json
import shutil
import subprocess
import sys

import pytest

from zoodeploy.card import load_card


def zd(*args):
    return subprocess.run([sys.executable, "-m", "zoodeploy", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def one_line_error(r, *needles):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_evaluate_bench_report_json(artifact):
    art = artifact("lenet5")
    r = zd("evaluate", art, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    fp32 = out["variants"]["fp32"]
    assert out["split"] == "test" and out["recorded_in_card"] is True
    assert fp32["n"] == 359 and fp32["drop_pt"] == 0 and set(fp32["per_class"]) == set(map(str, range(10)))
    assert load_card(art).variants["fp32"].accuracy.model_dump(mode="json") == fp32

    r = zd("bench", art, "--batch", "1,2", "--threads", "1", "--max-seconds", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["eager"]) == {"1", "2"} and set(out["variants"]["fp32"]) == {"1", "2"}
    row = out["variants"]["fp32"]["2"]
    assert row["speedup_vs_eager"] == pytest.approx(out["eager"]["2"]["p50_ms"] / row["p50_ms"])
    assert out["threads"] == 1 and out["peak_rss_mb"] > 0
    assert load_card(art).variants["fp32"].latency["2"].p50_ms == row["p50_ms"]

    r = zd("report", art, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"report": str(art / "report.md"), "pareto": str(art / "pareto.png")}


@pytest.mark.parametrize("case", ["no-artifact", "unknown-variant", "bad-batch", "zero-threads", "negative-drop",
                                  "no-baseline", "no-figures"])
def test_bad_input_is_one_line(case, trained, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(trained("lenet5"), art)
    args, needles = {
        "no-artifact": (["evaluate", tmp_path / "nope"], ["not an artifact directory"]),
        "unknown-variant": (["evaluate", art, "--variants", "fp32,int4"], ["no variant 'int4'", "fp32"]),
        "bad-batch": (["bench", art, "--batch", "8,big"], ["--batch", "1,8,32"]),
        "zero-threads": (["bench", art, "--threads", "0"], ["--threads"]),
        "negative-drop": (["check", art, "--max-drop", "-0.5"], ["--max-drop"]),
        "no-baseline": (["check", art, "--max-drop", "1", "--max-slowdown", "1.5"],
                        ["no latency baseline", "--update-baseline"]),
        "no-figures": (["report", art], ["zoodeploy bench"]),
    }[case]
    one_line_error(zd(*args), *needles)
