"""`zoodeploy train`: train or fine-tune a zoo model into an artifact directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoodeploy.cli.common import JsonFlag, console, print_json
from zoodeploy.models.train import Freeze, TrainConfig, train as train_model


def train(
    name: Annotated[str, typer.Argument(help="Zoo model name (see `zoodeploy models list`).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Artifact directory to write.")],
    data: Annotated[str, typer.Option(help="`digits` (bundled) or an ImageFolder directory.")] = "digits",
    image_size: Annotated[int | None, typer.Option(help="Input size (default: 32 for digits).")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs; the best epoch on val is kept.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, one-cycle).")] = 3e-3,
    freeze: Annotated[Freeze, typer.Option(help="`features`: train only the head; `none`: everything.")] = Freeze.none,
    weights: Annotated[str | None, typer.Option(help="`imagenet` or a checkpoint path (default: from scratch).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split, initialisation and order.")] = 0,
    json: JsonFlag = False,
) -> None:
    """Train NAME on DATA and write checkpoint.pt + card.json into OUT."""
    cfg = TrainConfig(model=name, data=data, image_size=image_size, epochs=epochs, batch_size=batch_size,
                      lr=lr, freeze=freeze, weights=weights, seed=seed)
    card = train_model(cfg, out)
    t = card.training
    if json:
        print_json(card.model_dump(mode="json"))
    else:
        console.print(f"[green]trained[/] {name} on {data} at {cfg.image_size}px: test accuracy "
                      f"{t.test_accuracy:.2f}% (val {t.val_accuracy:.2f}% at epoch {t.best_epoch}) "
                      f"in {t.seconds:.1f}s -> {out}")
