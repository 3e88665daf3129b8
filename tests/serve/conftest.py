"""A real `bentoml serve` for the serving tests, started once per module on a free port."""

from __future__ import annotations

import shutil

import pytest
from serve_helpers import MODEL, png_bytes, start_server

from zoodeploy.card import load_card, save_card


@pytest.fixture(scope="module")
def served_artifact(trained, tmp_path_factory):
    """A private copy of the trained artifact with fp32 selected, as `zoodeploy build` would."""
    dst = tmp_path_factory.mktemp("served") / MODEL
    shutil.copytree(trained(MODEL), dst)
    card = load_card(dst)
    card.selected = "fp32"
    save_card(dst, card)
    return dst


@pytest.fixture(scope="module")
def server(served_artifact, tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("server"), {"ZOODEPLOY_ARTIFACT": str(served_artifact)})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def test_images(digits):
    """Held-out digits as PNG bytes, with their labels: what a client would upload."""
    items = digits.test.items[:40]
    return [png_bytes(im) for im in items], digits.test.labels[:40]
