"""`zoodeploy models`: the zoo's JSON and a refusal through real subprocesses, as a user runs it;
the rest in-process (cli_support.invoke_cli, and the human tables through the `models` app alone),
which saves starting Python for each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_support import assert_one_line_error, invoke_cli
from typer.testing import CliRunner

from zoodeploy.cli.models import app


# each subprocess starts a Python that imports torch: start them at once, check them after
COMMANDS = {
    "list": ["models", "list", "--json"],
    "unknown": ["models", "info", "resnet05"],
}


@pytest.fixture(scope="module")
def ran() -> dict[str, subprocess.CompletedProcess]:
    procs = {key: subprocess.Popen([sys.executable, "-m", "zoodeploy", *args], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for key, args in COMMANDS.items()}
    done = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        done[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def test_list_json_names_the_whole_zoo(ran):
    r = ran["list"]
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 38
    resnet50 = next(row for row in rows if row["name"] == "resnet50")
    assert resnet50["published_params"] == 25_557_032
    assert resnet50["weights_enum"] == "ResNet50_Weights.IMAGENET1K_V2"


def test_info_json_measures_the_model():
    r = invoke_cli("models", "info", "mobilenet_v1", "--json", "--input-size", "128", "--num-classes", "10",
                   "--layers")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["name"], info["input_size"], info["num_classes"]) == ("mobilenet_v1", 128, 10)
    assert info["params"] == 4_231_976 - 1000 * 1025 + 10 * 1025
    assert info["macs"] > 0 and info["activation_bytes"] > 0
    assert info["published_macs"] == 569_000_000 and info["year"] == 2017
    assert info["layers"][-1]["output_shape"] == [1, 10]


def test_unknown_name_is_one_line_with_a_suggestion(ran):
    assert_one_line_error(ran["unknown"], "resnet05 is neither", "did you mean resnet50")


def test_too_small_input_is_one_line():
    r = invoke_cli("models", "info", "alexnet", "--input-size", "32")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: alexnet needs an input of at least 63x63 pixels, got 32"


def test_list_table_filters_by_pattern():
    r = CliRunner().invoke(app, ["list", "--include", "squeezenet*"])
    assert r.exit_code == 0, r.output
    assert "squeezenet1_0" in r.output and "squeezenet1_1" in r.output
    assert "resnet" not in r.output


def test_info_table_shows_measured_and_published_figures():
    r = CliRunner().invoke(app, ["info", "googlenet", "--layers"])
    assert r.exit_code == 0, r.output
    # params are the deployed model's (6,624,904, as published); the auxiliary heads apart
    assert "6.62 M" in r.output and "aux heads (training only)" in r.output
    assert "inception5b" in r.output and "GoogLeNet_Weights.IMAGENET1K_V1" in r.output
