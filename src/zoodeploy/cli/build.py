"""`zoodeploy build`: train, export, optimize, evaluate, bench, select and report in one command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zoodeploy.bench.latency import BenchConfig
from zoodeploy.build import BuildConfig, build as run_build
from zoodeploy.target import Target
from zoodeploy.cli.bench import BatchOpt, MaxSecondsOpt, parse_batches
from zoodeploy.artifact import Objective
from zoodeploy.cli.common import (DEFAULT_MAX_DROP, SOURCE_HELP, CalibDataOpt, EvalDataOpt, ForceFlag, InputSizeOpt,
                                  JsonFlag, LabelsOpt, MaxDropOpt, NameOpt, PreprocessingOpt, ThreadsOpt, console,
                                  print_json)
from zoodeploy.errors import ZoodeployError
from zoodeploy.cli.evaluate import show_progress
from zoodeploy.progress import stage_say

if TYPE_CHECKING:
    from zoodeploy.models.sources import SourceConfig


def build(
    name: Annotated[str, typer.Argument(help=f"Zoo model name to train (with --data), or {SOURCE_HELP} to deploy "
                                             "as it is (with --calib-data / --eval-data).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Artifact directory to write.")],
    data: Annotated[str | None, typer.Option(
        help="Train on `digits` (bundled, the default) or an ImageFolder directory, then deploy.")] = None,
    labels: LabelsOpt = None,
    preprocessing: PreprocessingOpt = None,
    calib_data: CalibDataOpt = None,
    eval_data: EvalDataOpt = None,
    model_name: NameOpt = None,
    target: Annotated[Target, typer.Option(help="cpu: fuse+int8; mobile: + ORT format; gpu: fp16 + TensorRT.")] = Target.cpu,
    max_drop: MaxDropOpt = DEFAULT_MAX_DROP,
    select: Annotated[Objective | None, typer.Option(
        "--select", help="What the selection optimizes within --max-drop: `latency` (p50 at the first --batch) or "
                         "`throughput` (images/s at the best measured batch); `size` (smallest int8, the default for "
                         "mobile, whose timing this host cannot measure).")] = None,
    max_latency: Annotated[float | None, typer.Option(
        "--max-latency", min=0, help="Latency budget in ms: only variants whose p50 at the first --batch is within it.")] = None,
    target_isa: Annotated[str | None, typer.Option(
        help="CPU int8 is quantized for: arm64 | x86-avx2 | x86-vnni | host (default: arm64 for mobile, else host).")] = None,
    epochs: Annotated[int | None, typer.Option(
        help="Training epochs (default: the zoo entry's); 0 uses --weights as they are.")] = None,
    image_size: InputSizeOpt = None,
    weights: Annotated[str | None, typer.Option(help="`imagenet` or a checkpoint path (default: none, from scratch, when "
                                                     "training; the model's own or imagenet when deploying a SOURCE).")] = None,
    batch: BatchOpt = "1,8,32",
    threads: ThreadsOpt = None,
    max_seconds: MaxSecondsOpt = 30.0,
    seed: Annotated[int, typer.Option(help="Seed for the split, initialisation and order.")] = 0,
    force: ForceFlag = False,
    json: JsonFlag = False,
) -> None:
    """Build NAME into OUT and select the best variant within --max-drop."""
    source = _source(name, data, weights, image_size, seed, labels, preprocessing, calib_data, eval_data, model_name)
    cfg = BuildConfig(model=name, out=out, data=data or "digits", source=source, target=target, max_drop=max_drop, target_isa=target_isa,
                      epochs=epochs,
                      image_size=image_size, weights=weights, batches=parse_batches(batch), threads=threads,
                      seed=seed, force=force, timing=BenchConfig(max_seconds=max_seconds), select=select,
                      max_latency_ms=max_latency)
    card = run_build(cfg, say=stage_say(), progress=show_progress(json))
    if json:
        print_json(card.model_dump(mode="json"))
    else:
        console.print(f"[green]built[/] {out}: selected [bold]{card.selected}[/]; see {out / 'report.md'}")


def _source(name: str, data: str | None, weights: str | None, image_size: int | None, seed: int, labels: str | None,
            preprocessing: str | None, calib_data: str | None, eval_data: str | None,
            model_name: str | None = None) -> SourceConfig | None:
    """A SourceConfig when NAME is deployed without training (None: train it on --data)."""
    from zoodeploy.models.sources import SourceConfig, resolve_source
    deploy = calib_data or eval_data or labels or preprocessing or model_name
    if data is not None and deploy:
        raise ZoodeployError("--data trains the model; --calib-data / --eval-data / --labels / --preprocessing / "
                             "--name deploy a model as it is: pass one or the other")
    if data is not None or (not deploy and resolve_source(name).kind == "zoo"):
        return None
    if not (calib_data or eval_data):
        raise ZoodeployError(f"building {name} without training needs images: pass --calib-data DIR and/or "
                             "--eval-data DIR (folders of images, labelled or not)")
    return SourceConfig(name, weights=weights, labels=labels, preprocessing=preprocessing, input_size=image_size,
                        calib_data=calib_data, eval_data=eval_data, seed=seed, name=model_name)
