"""load_model: an artifact's eval-mode model from its card and checkpoint, or a one-line refusal."""

from __future__ import annotations

import pytest
import torch

from zoodeploy.card import load_card
from zoodeploy.errors import ArtifactError
from zoodeploy.models.artifact import load_model
from zoodeploy.models.train import init_artifact


@pytest.fixture
def lenet5(tmp_path, digits):
    torch.manual_seed(0)
    init_artifact("lenet5", tmp_path / "lenet5", splits=digits)
    return tmp_path / "lenet5"


def test_loads_the_checkpoint_in_eval_mode(lenet5):
    model = load_model(lenet5)
    assert not model.training
    saved = torch.load(lenet5 / load_card(lenet5).checkpoint, weights_only=True)
    state = model.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(saved[k], state[k]) for k in saved)


def test_refuses_a_changed_checkpoint(lenet5):
    with open(lenet5 / load_card(lenet5).checkpoint, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match="does not match the sha256 in the card"):
        load_model(lenet5)


def test_refuses_a_missing_checkpoint(lenet5):
    card = load_card(lenet5)
    (lenet5 / card.checkpoint).unlink()
    with pytest.raises(ArtifactError, match="missing; retrain with `zoodeploy train`"):
        load_model(lenet5, card)


def test_refuses_a_card_without_checkpoint(lenet5):
    card = load_card(lenet5).model_copy(update={"checkpoint": None})
    with pytest.raises(ArtifactError, match="the card records no checkpoint"):
        load_model(lenet5, card)
