"""`zoodeploy build`: train, export, optimize, evaluate, bench, select and report in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoodeploy.bench.latency import BenchConfig
from zoodeploy.build import BuildConfig, Target, build as run_build
from zoodeploy.cli.bench import BatchOpt, MaxSecondsOpt, parse_batches
from zoodeploy.cli.common import JsonFlag, ThreadsOpt, console, print_json
from zoodeploy.cli.evaluate import show_progress


def build(
    name: Annotated[str, typer.Argument(help="Zoo model name (see `zoodeploy models list`).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Artifact directory to write.")],
    data: Annotated[str, typer.Option(help="`digits` (bundled) or an ImageFolder directory.")] = "digits",
    target: Annotated[Target, typer.Option(help="cpu: fuse+int8; mobile: + ORT format; gpu: fp16 + TensorRT.")] = Target.cpu,
    max_drop: Annotated[float, typer.Option(help="Top-1 percentage points the selected variant may lose vs fp32.")] = 1.0,
    epochs: Annotated[int | None, typer.Option(
        help="Training epochs (default: the zoo entry's); 0 uses --weights as they are.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Input size (default for digits: 32, 48 for SqueezeNet; else the model's own).")] = None,
    weights: Annotated[str | None, typer.Option(help="`imagenet` or a checkpoint path (default: from scratch).")] = None,
    batch: BatchOpt = "1,8,32",
    threads: ThreadsOpt = None,
    max_seconds: MaxSecondsOpt = 30.0,
    seed: Annotated[int, typer.Option(help="Seed for the split, initialisation and order.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Build into a directory that already holds an artifact.")] = False,
    json: JsonFlag = False,
) -> None:
    """Build NAME into OUT and mark the fastest variant within --max-drop as `selected`."""
    cfg = BuildConfig(model=name, out=out, data=data, target=target, max_drop=max_drop, epochs=epochs,
                      image_size=image_size, weights=weights, batches=parse_batches(batch), threads=threads,
                      seed=seed, force=force, timing=BenchConfig(max_seconds=max_seconds))
    card = run_build(cfg, say=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True),
                     progress=show_progress(json))
    if json:
        print_json(card.model_dump(mode="json"))
    else:
        console.print(f"[green]built[/] {out}: selected [bold]{card.selected}[/]; see {out / 'report.md'}")
