"""`zoodeploy train`: train or fine-tune a zoo model into an artifact directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoodeploy.cli.common import ForceFlag, InputSizeOpt, JsonFlag, console, print_json
from zoodeploy.models.facts import zoo_facts
from zoodeploy.models.train_config import Freeze, TrainConfig


def train(
    name: Annotated[str, typer.Argument(help="Zoo model name (see `zoodeploy models list`).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Artifact directory to write.")],
    data: Annotated[str, typer.Option(help="`digits` (bundled) or an ImageFolder directory.")] = "digits",
    input_size: InputSizeOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs; the best epoch on val is kept.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW, one-cycle).")] = None,
    freeze: Annotated[Freeze, typer.Option(help="`features`: train only the head; `none`: everything.")] = Freeze.none,
    weights: Annotated[str | None, typer.Option(help="`imagenet` or a checkpoint path (default: none, from scratch).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split, initialisation and order.")] = 0,
    force: ForceFlag = False,
    json: JsonFlag = False,
) -> None:
    """Train NAME on DATA and write checkpoint.pt + card.json into OUT."""
    zoo_facts().get(name)  # a mistyped name is refused, with suggestions, before torch loads
    from zoodeploy.models.train import refuse_existing, train as train_model
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr}  # unset: TrainConfig's defaults
    cfg = TrainConfig(model=name, data=data, image_size=input_size, freeze=freeze, weights=weights,
                      seed=seed, **{k: v for k, v in given.items() if v is not None})
    refuse_existing(out, force)  # before any work
    if force:
        from zoodeploy.build import clear_artifact
        clear_artifact(out)
    card = train_model(cfg, out, force=force)
    t = card.training
    if json:
        print_json(card.model_dump(mode="json"))
    else:
        console.print(f"[green]trained[/] {name} on {data} at {cfg.image_size}px: test accuracy "
                      f"{t.test_accuracy:.2f}% (val {t.val_accuracy:.2f}% at epoch {t.best_epoch}) "
                      f"in {t.seconds:.1f}s -> {out}")
