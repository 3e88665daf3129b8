"""Training and fine-tuning: accuracy on the held-out split, card contents, freezing."""

import json

import numpy as np
import pytest
import torch

from zoodeploy.card import load_card
from zoodeploy.errors import ZoodeployError
from zoodeploy.models.artifact import load_model
from zoodeploy.models.train import Freeze, TrainConfig, recompute_batchnorm, train


def test_trained_lenet5_generalises_to_held_out_digits(trained):
    card = load_card(trained("lenet5"))
    # asserted on the test split, which training and model selection never saw
    assert card.training.test_accuracy >= 95.0
    assert card.data.counts["test"] == 359 and card.data.source == "digits"
    assert card.training.best_epoch >= 1 and len(card.training.history) == card.training.epochs
    assert card.provenance.versions["torch"]
    assert card.labels == [str(i) for i in range(10)]


def test_every_model_the_suite_trains_has_learned_digits(trained, trained_names):
    """The drift, speed and serving tests judge these models: one that learned nothing (a dead
    SqueezeNet at 10%) would pass every drift check trivially."""
    for name in trained_names:
        card = load_card(trained(name))
        assert card.training.test_accuracy >= 90.0, (name, card.training.history)


def test_checkpoint_reloads_to_the_same_model(trained, digits):
    from zoodeploy.evaluate.accuracy import topk_accuracy
    from zoodeploy.models.train import predict_logits
    path = trained("lenet5")
    card = load_card(path)
    model = load_model(path)
    logits = predict_logits(model, digits.test.arrays(card.preprocessing))
    assert topk_accuracy(logits, digits.test.labels, 1) == pytest.approx(card.training.test_accuracy)


def test_freeze_features_trains_only_the_head(trained, digits, tmp_path):
    base = trained("lenet5")
    card = train(TrainConfig("lenet5", epochs=1, freeze=Freeze.features,
                             weights=str(base / "checkpoint.pt")), tmp_path / "ft", splits=digits,
                 progress=False)
    before = torch.load(base / "checkpoint.pt", weights_only=True)
    after = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)
    from zoodeploy.models.zoo import get_spec
    head = get_spec("lenet5").head
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(head + ".") for k in changed), changed
    assert card.training.freeze == "features"


def test_freeze_without_weights_is_refused():
    with pytest.raises(ZoodeployError, match="pretrained"):
        TrainConfig("lenet5", freeze=Freeze.features)


def test_too_small_input_is_refused():
    from zoodeploy.models.zoo import get_spec
    spec = get_spec("inception_v3")
    with pytest.raises(ZoodeployError, match="at least"):
        TrainConfig("inception_v3", image_size=spec.min_input_size - 1)


def test_card_is_valid_json_and_nothing_half_written(trained):
    path = trained("lenet5")
    json.loads((path / "card.json").read_text())
    assert not list(path.glob("*.tmp")) and not list(path.glob(".*.tmp"))


@pytest.mark.parametrize("steps", [1, 5, 10, 40])
def test_short_runs_train_at_a_real_rate(steps):
    """Five steps (e.g. 300 images, one epoch) used to divide by zero in OneCycleLR; one step
    trained at rate 0. Under 10 steps the rate is constant, from 10 on it is one cycle."""
    import torch

    from zoodeploy.models.train import one_cycle
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched, rates = one_cycle(opt, 0.01, steps), []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert all(r > 0 for r in rates[:-1]) and max(rates) == pytest.approx(0.01, rel=0.05)


def test_predict_logits_runs_without_autograd():
    """Evaluation inside training reads logits of a model whose weights require grad."""
    import numpy as np
    import torch

    from zoodeploy.models.train import predict_logits
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    out = predict_logits(model, np.ones((5, 3, 2, 2), np.float32), batch_size=2)
    assert out.shape == (5, 3) and np.isfinite(out).all()


def test_recomputed_batchnorm_statistics_are_the_inference_graphs():
    """The running statistics become the plain average over the images, measured with the model in
    eval mode: the dropout before the BatchNorm (a training-only branch, like FractalNet's
    drop-path) is off while they are measured."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3)
    bn = torch.nn.BatchNorm2d(4, momentum=0.3)
    model = torch.nn.Sequential(conv, torch.nn.Dropout(0.5), bn)
    x = np.random.default_rng(0).normal(2.0, 3.0, (256, 3, 8, 8)).astype(np.float32)
    recompute_batchnorm(model, x, batch_size=64)
    with torch.no_grad():
        y = conv(torch.from_numpy(x))
    assert torch.allclose(bn.running_mean, y.mean((0, 2, 3)), atol=1e-4)
    batch_vars = torch.stack([y[i:i + 64].var((0, 2, 3)) for i in range(0, 256, 64)])  # unbiased, as BN
    assert torch.allclose(bn.running_var, batch_vars.mean(0), rtol=1e-4)
    assert bn.num_batches_tracked == 4 and bn.momentum == 0.3 and not model.training and not bn.training


def test_fractalnet_validates_with_recomputed_batchnorm():
    from zoodeploy.models.zoo import get_spec
    assert get_spec("fractalnet").recompute_batchnorm
    assert not get_spec("resnet18").recompute_batchnorm
