"""`zoodeploy conform`: every way out against the in-process runner, on a real Triton server.

Skipped, with the reason, where the Triton server cannot be installed; `judge` is tested without it.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from cli_support import assert_one_line_error, run_cli
from triton_server import TritonServer

from zoodeploy.card import load_card, save_card
from zoodeploy.conform import Scores, judge
from zoodeploy.package.triton import RepositoryConfig, make_repository

LOGITS = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]], np.float32)


@pytest.fixture(scope="module")
def art(trained, tmp_path_factory):
    art = tmp_path_factory.mktemp("conform") / "lenet5"
    shutil.copytree(trained("lenet5"), art)
    return art


def _image_repo(art, out):
    return make_repository(art, out, RepositoryConfig(variant="fp32", input="image")).path


@pytest.fixture(scope="module")
def planted(art, tmp_path_factory):
    """The same artifact as model `lenet5x`, whose Triton preprocessing model normalizes with another mean
    (a planted preprocessing drift); its tensor model is right."""
    copy = tmp_path_factory.mktemp("planted") / "lenet5x"
    shutil.copytree(art, copy)
    card = load_card(copy)
    card.name = "lenet5x"
    save_card(copy, card)
    repo = _image_repo(copy, tmp_path_factory.mktemp("planted-repo") / "models")
    record = repo / "lenet5x_preprocess" / "1" / "preprocessing.json"
    doc = json.loads(record.read_text())
    doc["preprocessing"]["mean"] = [0.9, 0.1, 0.9]
    record.write_text(json.dumps(doc))
    return copy, repo


@pytest.fixture(scope="module")
def server(triton_home, art, planted, tmp_path_factory):
    """One Triton for the module: lenet5 (as packaged) and lenet5x (planted), each with its image ensemble."""
    tmp = tmp_path_factory.mktemp("conform-triton")
    with TritonServer([_image_repo(art, tmp / "models"), planted[1]], log=tmp / "triton.log", install=triton_home) as s:
        yield s


def test_judge_uses_the_variants_tolerance():
    assert judge("x", Scores(LOGITS + 1e-6), LOGITS, "fp32").ok
    swapped = judge("x", Scores(LOGITS[:, [1, 0, 2]]), LOGITS, "fp32")
    assert not swapped.ok and swapped.top1 == 0.0
    assert judge("x", Scores(LOGITS * 1.01), LOGITS, "int8").ok  # int8: top-1 agreement only
    assert not judge("x", Scores(LOGITS[:1]), LOGITS, "fp32").ok  # a row missing


def test_every_way_agrees_on_the_default_artifact(server, art):
    r = run_cli("conform", art, "--variant", "fp32", "--triton", server.url, "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["way"]: row for row in json.loads(r.stdout)}
    # the served ways through a `bentoml serve` conform started itself (--serve local, the default)
    assert list(rows) == ["runner", "predict", "bundle", "serve-classify", "serve-v2", "triton", "triton-image"]
    for row in rows.values():
        assert row["ok"] and row["n"] == 16 and row["top1"] == 100.0, row


def test_a_way_that_disagrees_fails_by_name(server, planted):
    r = run_cli("conform", planted[0], "--variant", "fp32", "--triton", server.url, "--ways", "triton,triton-image")
    line = assert_one_line_error(r, "triton-image disagrees with the in-process runner")
    assert "triton disagrees" not in line.replace("triton-image", "")  # the tensor way still agrees
    assert "triton-image" in r.stdout  # the table is printed before the verdict
