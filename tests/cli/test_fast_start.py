"""A CLI that starts at once and commands a user can guess: `zoodeploy --help` imports none of the
heavy libraries, lists each command with its own first help line, `--version` answers, a usage error
of a command whose module is kept light answers without torch, and `train -o EXISTING` refuses
without --force (with it, what the old model left is removed, the user's other files kept)."""

import json
import subprocess
import sys

import pytest
from cli_support import assert_one_line_error, invoke_cli

from zoodeploy import __version__
from zoodeploy.cli.app import COMMANDS, make_app, short_help

HEAVY = ("torch", "torchvision", "onnxruntime", "onnx", "openvino", "bentoml", "ray", "tensorrt", "matplotlib")


def _imports_after(args: list[str]) -> tuple[str, list[str]]:
    code = f"""
import json, sys
from zoodeploy.cli.app import run
try:
    run({args!r})
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return r.stdout, json.loads(r.stderr.strip().splitlines()[-1])


def test_help_imports_no_heavy_library_and_lists_every_command():
    out, heavy = _imports_after(["--help"])
    assert heavy == []
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("args", [["build", "--bogus"], ["bench", "--bogus"], ["models", "--bogus"],
                                  ["predict", "--bogus"], ["trian"]])
def test_a_usage_error_imports_no_heavy_library(args):
    assert _imports_after(args)[1] == []


def test_each_listed_line_is_the_commands_own_first_help_line():
    import typer.main
    for name in COMMANDS:
        cmd = typer.main.get_command(make_app(name)).commands[name]
        assert short_help(name) == cmd.help.strip().splitlines()[0], name


def test_version():
    r = invoke_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"zoodeploy {__version__}"


def _old_artifact(out):
    out.mkdir()
    (out / "card.json").write_text(json.dumps({"checkpoint": "checkpoint.pt", "variants": {
        "int8": {"file": "int8.onnx"}, "int8-ort": {"file": "int8.ort", "recipe": {
            "required_operators_config": "int8.required_operators.config"}}}}))
    for f in ("checkpoint.pt", "int8.onnx", "int8.ort", "int8.required_operators.config", "report.md", "pareto.png",
              "latency-baseline.json", "my-notes.txt"):
        (out / f).write_text("old")


def test_train_into_an_existing_artifact_is_refused_without_force(tmp_path):
    _old_artifact(tmp_path / "a")
    r = invoke_cli("train", "lenet5", "--epochs", "1", "-o", tmp_path / "a")
    assert_one_line_error(r, "already holds an artifact", "--force")
    assert (tmp_path / "a" / "int8.onnx").read_text() == "old"  # nothing touched


def test_force_clears_what_the_old_model_left_and_keeps_other_files(tmp_path):
    from zoodeploy.build import clear_artifact
    _old_artifact(tmp_path / "a")
    removed = clear_artifact(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["my-notes.txt"]
    assert "report.md" in removed and "latency-baseline.json" in removed and removed[-1] == "card.json"
