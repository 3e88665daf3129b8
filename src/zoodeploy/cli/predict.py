"""`zoodeploy predict`: bulk inference over files, folders, globs and lists, into one table."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from zoodeploy.cli.common import ArtifactArg, JsonFlag, ThreadsOpt, console, print_json
from zoodeploy.predict import Engine, PredictConfig
from zoodeploy.progress import on_terminal
from zoodeploy.predict import predict as run_predict


def predict(
    artifact: ArtifactArg,
    inputs: Annotated[list[str], typer.Argument(
        help="Image files, folders (recursive), globs, or .txt files listing paths (one a line).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output table: .parquet, .csv or .jsonl.")],
    variant: Annotated[str, typer.Option(help="`selected` (the card's pick) or a variant name: fp32, int8, ...")]
    = "selected",
    top_k: Annotated[int, typer.Option("--top-k", help="Labels and probabilities per image, best first.")] = 5,
    batch: Annotated[int | None, typer.Option(help="Images per model run (default: the variant's best from "
                                                   "`bench --throughput`, else 32).")] = None,
    engine: Annotated[Engine, typer.Option(help="`local`: in this process; `ray`: Ray Data actors.")]
    = Engine.local,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="A running Ray cluster (default: start a local Ray instance).")] = None,
    resume: Annotated[bool, typer.Option(help="Keep the shards a killed run already wrote.")] = False,
    logits: Annotated[bool, typer.Option(help="Add one logit column per class.")] = False,
    threads: ThreadsOpt = None,
    workers: Annotated[int | None, typer.Option(
        help="Decoding threads (local; default: the cores but one) or actors (ray; default: the cores).")] = None,
    shard_size: Annotated[int, typer.Option(
        "--shard-size", help="Rows per shard: what a killed run loses at most.")] = 1024,
    json: JsonFlag = False,
) -> None:
    """Predict every image INPUTS name with one variant of ARTIFACT: one row per image, unreadable files as error rows."""
    cfg = PredictConfig(out=out, variant=variant, top_k=top_k, batch=batch, engine=engine, ray_address=ray_address,
                        resume=resume, logits=logits, threads=threads, workers=workers, shard_size=shard_size,
                        progress=not json and on_terminal())
    summary = run_predict(artifact, inputs, cfg)
    if json:
        print_json({**asdict(summary), "images_per_s": summary.images_per_s})
        return
    console.print("[green]predicted[/] " + escape(summary.line()), soft_wrap=True, highlight=False)
