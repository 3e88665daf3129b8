"""Training and fine-tuning of any zoo model; writes checkpoint.pt and card.json."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from zoodeploy.card import CARD_FILE, CHECKPOINT_FILE, ModelCard, Training, provenance, save_card
from zoodeploy.errors import ArtifactError, ZoodeployError
from zoodeploy.fileio import atomic_path, sha256_file
from zoodeploy.models.data import Splits, digits_preprocessing, load_splits
from zoodeploy.models.train_config import Freeze, TrainConfig
from zoodeploy.models.zoo import ModelSpec, build_model, get_spec, head_module, replace_head
from zoodeploy.preprocess import Preprocessing
from zoodeploy.progress import Eta, Say, bar, write


def preprocessing_for(spec: ModelSpec, data: str, image_size: int) -> Preprocessing:
    if data == "digits":
        return digits_preprocessing(image_size)
    p = spec.preprocessing
    return Preprocessing.for_size(image_size, crop_fraction=p.input_size / p.resize, mean=p.mean,
                                  std=p.std, interpolation=p.interpolation)


def _initial_model(cfg: TrainConfig, spec: ModelSpec, num_classes: int) -> nn.Module:
    if cfg.weights in (None, "imagenet"):
        return build_model(cfg.model, num_classes=num_classes, weights=cfg.weights)
    # a local checkpoint may have another class count (fine-tuning to new labels)
    n = _checkpoint_num_classes(spec, cfg.weights) or num_classes
    model = build_model(cfg.model, num_classes=n, weights=cfg.weights)
    return model if n == num_classes else replace_head(model, spec, num_classes)


def _checkpoint_num_classes(spec: ModelSpec, path: str) -> int | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None  # load_weights reports the real problem with the file
    state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else {}
    w = state.get(f"{spec.head}.weight") if isinstance(state, dict) else None
    return int(w.shape[0]) if isinstance(w, torch.Tensor) else None


def _skip_small_aux_branches(model: nn.Module, spec: ModelSpec, image_size: int) -> None:
    """Inception v3's auxiliary classifier needs >= 299 px: below that it trains without it.

    Its weights stay in the model (unused), so the checkpoint loads into the zoo's builder.
    """
    if spec.aux_heads and image_size < spec.aux_min_input_size:
        for head in spec.aux_heads:
            model.get_submodule(head.rpartition(".")[0]).forward = lambda *args, **kwargs: None


def _loss(out, target: torch.Tensor, aux_weight: float, smoothing: float) -> torch.Tensor:
    def ce(logits, y):
        return nn.functional.cross_entropy(logits, y, label_smoothing=smoothing)
    if isinstance(out, torch.Tensor):
        return ce(out, target)
    main, *aux = out  # GoogLeNet / Inception: (logits, aux...) in training mode
    return ce(main, target) + aux_weight * sum(ce(a, target) for a in aux if a is not None)


def one_cycle(opt: torch.optim.Optimizer, lr: float, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The one-cycle schedule (20% warm-up); a constant rate for a run of under 10 steps, which has
    no warm-up to speak of: OneCycleLR divides by zero at 5 steps and trains nothing at 1 (rate 0)."""
    if steps < 10:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits of a PyTorch model for a float32 (N,3,H,W) array."""
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i:i + batch_size])).numpy()
                           for i in range(0, len(x), batch_size)]) if len(x) else np.zeros((0, 0))


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels (edge-replicated padding, then crop)."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=gen).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict_logits(model, x).argmax(1) == y).mean() * 100.0)


# BatchNorm running statistics must settle within a few hundred steps on a small data set;
# MobileNetV3's momentum of 0.01 leaves them near their initial values, and eval mode at chance
MIN_BN_MOMENTUM = 0.1


def _settle_batchnorm_faster(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None:
            m.momentum = max(m.momentum, MIN_BN_MOMENTUM)


# images the recomputed BatchNorm statistics average over: a few hundred settle them (PreciseBN,
# Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"), at a fraction of an epoch's cost
BATCHNORM_IMAGES = 512


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, x: np.ndarray, batch_size: int = 128) -> None:
    """Replace every BatchNorm layer's running statistics by their average over `x` with the model
    in eval mode (its inference graph: no drop-path, no dropout), the layers alone normalizing
    with batch statistics; the model is left in eval mode."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches, not an exponential one
        m.train()
    for i in range(0, len(x), batch_size):
        model(torch.from_numpy(x[i:i + batch_size]))
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
        m.eval()


def _set_trainable(model: nn.Module, spec: ModelSpec, freeze: Freeze) -> list[nn.Parameter]:
    if freeze is Freeze.none:
        model.train()
        return list(model.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    head = head_module(model, spec)
    for p in head.parameters():
        p.requires_grad_(True)
    model.eval()  # frozen features keep their BatchNorm statistics
    head.train()
    return list(head.parameters())


def refuse_existing(out_dir: str | Path, force: bool) -> None:
    """An artifact already in `out_dir` is never overwritten silently: refused without `force`
    (with it, the caller has cleared what the old model left: `zoodeploy.build.clear_artifact`)."""
    if (Path(out_dir) / CARD_FILE).exists() and not force:
        raise ArtifactError(f"{out_dir} already holds an artifact; choose another -o, or pass --force to "
                            "replace it (its variants, reports and baseline are removed)")


def train(cfg: TrainConfig, out_dir: str | Path, *, splits: Splits | None = None,
          progress: bool = True, force: bool = False, say: Say | None = None) -> ModelCard:
    """Train (or fine-tune) `cfg.model` and write checkpoint.pt + card.json into `out_dir`
    (refused when it already holds an artifact, unless `force`). One line per epoch, with an ETA,
    goes to `say` (a log), else to the terminal under the bar with `progress`."""
    refuse_existing(out_dir, force)
    start = time.perf_counter()
    spec = get_spec(cfg.model)
    torch.manual_seed(cfg.seed)
    splits = splits or load_splits(cfg.data, seed=cfg.seed)
    prep = preprocessing_for(spec, cfg.data, cfg.image_size)
    x_train, y_train = splits.train.arrays(prep), splits.train.labels
    x_val, x_test = splits.val.arrays(prep), splits.test.arrays(prep)
    model = _initial_model(cfg, spec, len(splits.labels))
    _skip_small_aux_branches(model, spec, cfg.image_size)
    _settle_batchnorm_faster(model)
    params = _set_trainable(model, spec, cfg.freeze)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * -(-len(x_train) // cfg.batch_size)
    sched = one_cycle(opt, cfg.lr, steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    max_shift = cfg.image_size // 16 if cfg.augment else 0
    best = (-1.0, 0, None)
    history = []
    eta = Eta(cfg.epochs)
    for epoch in range(1, cfg.epochs + 1):
        _set_trainable(model, spec, cfg.freeze)
        order = torch.randperm(len(x_train), generator=gen).numpy()
        batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        batch_bar = bar(batches, desc=f"{cfg.model} epoch {epoch}/{cfg.epochs}", unit="batch",
                        disable=not progress, leave=False)
        total = 0.0
        for b in batch_bar:
            if len(b) < 2 and cfg.freeze is Freeze.none:
                continue  # BatchNorm cannot train on a batch of one
            xb = _shift(torch.from_numpy(x_train[b]), max_shift, gen)
            loss = _loss(model(xb), torch.from_numpy(y_train[b]), spec.aux_loss_weight, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
            batch_bar.set_postfix(loss=f"{loss.item():.3f}")
        if spec.recompute_batchnorm:
            recompute_batchnorm(model, x_train[order[:BATCHNORM_IMAGES]])
        val = _accuracy(model, x_val, splits.val.labels)
        history.append({"epoch": epoch, "loss": total / len(x_train), "val_accuracy": val})
        line = f"{cfg.model} epoch {epoch}/{cfg.epochs}: loss {total / len(x_train):.4f} val {val:.2f}% " \
               f"({eta.after(epoch)})"
        if say is not None:
            say(line)
        elif progress:
            write(line)
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    test = _accuracy(model, x_test, splits.test.labels)
    return _write(cfg, out_dir, model, spec, splits, prep, best, test, history, start)


def _save_checkpoint(model: nn.Module, out: Path) -> Path:
    ckpt = out / CHECKPOINT_FILE
    with atomic_path(ckpt) as tmp:
        torch.save(model.state_dict(), tmp)
    return ckpt


def init_artifact(name: str, out_dir: str | Path, *, image_size: int | None = None,
                  weights: str | None = None, splits: Splits | None = None,
                  labels: list[str] | None = None) -> ModelCard:
    """An artifact straight from the zoo, without training: random init or weights as they are.

    With `splits` the card records that data (so variants can be evaluated on it); otherwise
    `labels` (default: ImageNet's 1000 categories for imagenet weights, else class_0..).
    """
    spec = get_spec(name)
    image_size = image_size or spec.input_size
    if image_size < spec.min_input_size:
        raise ZoodeployError(f"{name} needs an input of at least {spec.min_input_size}px, got {image_size}")
    if splits is not None:
        labels = splits.labels
    elif labels is None and weights == "imagenet" and spec.weights_enum:
        import torchvision
        labels = list(torchvision.models.get_weight(spec.weights_enum).meta["categories"])
    labels = labels or [f"class_{i}" for i in range(1000)]
    model = build_model(name, num_classes=len(labels), weights=weights).eval()
    prep = (preprocessing_for(spec, "digits", image_size) if splits is not None and splits.spec.source == "digits"
            else preprocessing_for(spec, "folder", image_size))
    ckpt = _save_checkpoint(model, Path(out_dir))
    card = ModelCard(name=name, num_classes=len(labels), labels=labels, preprocessing=prep,
                     weights=weights or "random-init", data=splits.spec if splits else None,
                     checkpoint=CHECKPOINT_FILE, checkpoint_sha256=sha256_file(ckpt), provenance=provenance())
    save_card(out_dir, card)
    return card


def _write(cfg, out_dir, model, spec, splits, prep, best, test, history, start) -> ModelCard:
    out = Path(out_dir)
    ckpt = _save_checkpoint(model, out)
    training = Training(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                        freeze=cfg.freeze.value, weights=cfg.weights, image_size=cfg.image_size,
                        best_epoch=best[1], val_accuracy=best[0], test_accuracy=test,
                        seconds=round(time.perf_counter() - start, 2), history=history)
    card = ModelCard(name=spec.name, num_classes=len(splits.labels), labels=splits.labels,
                     preprocessing=prep, weights=cfg.weights or "scratch", data=splits.spec,
                     training=training, checkpoint=CHECKPOINT_FILE,
                     checkpoint_sha256=sha256_file(ckpt),
                     provenance=provenance().model_copy(
                         update={"train_config": {**asdict(cfg), "freeze": cfg.freeze.value}}))
    save_card(out, card)
    return card
