"""Bad input to `zoodeploy predict` is one line and exit 1 (in-process with Typer's CliRunner;
the real subprocess runs are in test_predict.py), and a good run prints its summary."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from zoodeploy.cli.app import make_app
from zoodeploy.errors import MissingDependencyError, ZoodeployError


def invoke(*args):
    return CliRunner().invoke(make_app("predict"), ["predict", *map(str, args)])


def test_summary_json(trained, digit_pngs, tmp_path):
    r = invoke(trained("lenet5"), digit_pngs[0], digit_pngs[1], "-o", tmp_path / "p.jsonl", "--variant", "fp32",
               "--top-k", "2", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert (summary["rows"], summary["errors"], summary["variant"]) == (2, 0, "fp32")
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("case", ["no-images", "unwritable", "unknown-variant", "no-selected", "extension",
                                  "ray-resume", "bad-top-k"])
def test_bad_input_is_one_line(case, trained, digit_pngs, tmp_path):
    art = trained("lenet5")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    out = tmp_path / "p.csv"
    args, needle = {
        "no-images": ([tmp_path / "empty", "-o", out, "--variant", "fp32"], "no images found"),
        "unwritable": ([digit_pngs[0], "-o", tmp_path / "file" / "p.csv", "--variant", "fp32"], "cannot write"),
        "unknown-variant": ([digit_pngs[0], "-o", out, "--variant", "int4"], "no variant 'int4'"),
        "no-selected": ([digit_pngs[0], "-o", out], "the card selects no variant; select one with"),
        "extension": ([digit_pngs[0], "-o", tmp_path / "p.xlsx", "--variant", "fp32"], "unknown output extension"),
        "ray-resume": ([digit_pngs[0], "-o", out, "--engine", "ray", "--resume"], "--resume is for --engine local"),
        "bad-top-k": ([digit_pngs[0], "-o", out, "--top-k", "0"], "--top-k must be at least 1"),
    }[case]
    r = invoke(art, *args)
    assert r.exit_code == 1 and isinstance(r.exception, ZoodeployError), (r.output, r.exception)
    message = " ".join(str(r.exception).split())
    assert needle in message and "\n" not in str(r.exception).strip(), message
    assert not out.exists()


def test_ray_missing_names_the_extra(monkeypatch, tmp_path):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("ray") else
                        find_spec(name, *a))
    from zoodeploy.predict import PredictConfig
    with pytest.raises(MissingDependencyError, match=r"zoodeploy\[ray\]"):
        PredictConfig(out=tmp_path / "p.csv", engine="ray")
