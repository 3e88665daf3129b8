"""A CLI that starts at once and commands a user can guess: `zoodeploy --help` imports none of the
heavy libraries, lists each command with its own first help line, `--version` answers, every usage
error, command help and `models list` answer without torch, and `train -o EXISTING` refuses
without --force (with it, what the old model left is removed, the user's other files kept)."""

import json
import subprocess
import sys

from cli_support import assert_one_line_error, invoke_cli

from zoodeploy import __version__
from zoodeploy.cli.app import COMMANDS, make_app, short_help

HEAVY = ("torch", "torchvision", "onnxruntime", "onnx", "openvino", "bentoml", "ray", "tensorrt", "matplotlib")


def _imports_after(*runs: list[str]) -> tuple[str, dict[str, list[str]]]:
    """`zoodeploy ARGS` for each of `runs`, in that order, in one fresh Python: its stdout, and the heavy
    libraries each run loaded first (a library stays loaded, so a later run that needs it too is not
    seen: the runs that are allowed some go last)."""
    code = f"""
import json, sys
from zoodeploy.cli.app import run
loaded = {{}}
for args in {[list(map(str, r)) for r in runs]!r}:
    before = {{m for m in {HEAVY!r} if m in sys.modules}}
    try:
        run(args)
    except SystemExit:
        pass
    loaded[" ".join(args)] = sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before)
sys.stderr.write(json.dumps(loaded))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return r.stdout, json.loads(r.stderr.strip().splitlines()[-1])


def test_help_imports_no_heavy_library_and_lists_every_command():
    out, heavy = _imports_after(["--help"])
    assert heavy == {"--help": []}
    for name in COMMANDS:
        assert name in out


# What a usage error of these commands still loads: zoodeploy/optimize/__init__.py and
# zoodeploy/package/__init__.py import their heavy modules (onnxruntime, onnx) at once, where
# zoodeploy/export/__init__.py imports on first use; empty once they do the same.
NOT_YET_LIGHT = {"optimize": {"onnx", "onnxruntime"}, "compile": {"onnx", "onnxruntime"},
                 "package": {"onnx"}, "verify-bundle": {"onnx"}}


def _every_command() -> list[list[str]]:
    """Each command and subcommand as typed: ["train"], ["models", "list"], ..."""
    import typer.main
    out = []
    for name, (_, _, group, _) in COMMANDS.items():
        cmd = typer.main.get_command(make_app(name)).commands[name]
        out += [[name, sub] for sub in cmd.commands] if group else [[name]]
    return sorted(out, key=lambda c: c[0] in NOT_YET_LIGHT)  # light ones first: see _imports_after


def test_usage_errors_help_and_models_list_import_no_heavy_library(tmp_path):
    """A mistyped option, a command's --help, a mistyped command or zoo name and `models list` answer
    without torch, torchvision, onnxruntime, openvino, bentoml, ray or onnx (4 to 8 s each on 2 cores)."""
    runs = [["models", "list"], ["models", "info", "resnet5"], ["trian"], ["train", "resnet5", "-o", tmp_path / "a"]]
    runs += [[*cmd, flag] for cmd in _every_command() for flag in ("--bogus", "--help")]
    _, loaded = _imports_after(*runs)
    heavy = {args: set(mods) - NOT_YET_LIGHT.get(args.split()[0], set()) for args, mods in loaded.items()}
    assert {args: mods for args, mods in heavy.items() if mods} == {}
    assert len(loaded) == len(runs)


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
