"""Bulk inference: one row of top-k labels and probabilities per image, written to one file.

    predict(artifact, ["photos/", "more/*.jpg", "list.txt"], PredictConfig(out="preds.parquet"))

Two engines over the same per-batch code (zoodeploy.predict.batch, zoodeploy.preprocess's
decoding and preprocessing, the variant's runner from zoodeploy.runtime): `local` runs the
variant in this process with a decoding thread pool; `ray` maps the batches over a Ray Data
actor pool, on a local Ray instance or a cluster. How OUT is written (shards under OUT.parts/,
then one atomic assembly) is in zoodeploy.predict.output.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from zoodeploy.artifact import SELECTED, Artifact
from zoodeploy.card import ModelCard, Variant
from zoodeploy.errors import DataError
from zoodeploy.predict.inputs import expand_inputs
from zoodeploy.predict.output import OutputFormat, Schema, ShardDone, ShardStore
from zoodeploy.runtime import RunOptions, open_runner

__all__ = ["Engine", "PredictConfig", "PredictSummary", "expand_inputs", "predict"]


class Engine(str, Enum):
    local = "local"
    ray = "ray"


@dataclass(frozen=True)
class PredictConfig:
    out: Path  # .parquet, .csv or .jsonl
    variant: str = SELECTED  # the card's pick, or a variant name
    top_k: int = 5
    batch: int | None = None  # images per model run; None: the variant's best recorded settings, else 32
    engine: Engine = Engine.local
    ray_address: str | None = None  # a running cluster; None starts a local Ray instance
    resume: bool = False
    logits: bool = False
    threads: int | None = None  # model intra-op threads (local: all cores; ray: 1 per actor)
    workers: int | None = None  # decoding threads (local; default: the cores but one) or actors (ray; the cores)
    shard_size: int = 1024  # rows per shard: what a killed run loses at most
    progress: bool = False
    format: OutputFormat = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "engine", Engine(self.engine))
        for name in ("top_k", "batch", "shard_size", "threads", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DataError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.engine is Engine.local and self.ray_address:
            raise DataError("--ray-address is for --engine ray")
        if self.engine is Engine.ray and self.resume:
            raise DataError("--resume is for --engine local: a Ray run is redone whole")
        object.__setattr__(self, "format", OutputFormat.of(self.out))
        if self.engine is Engine.ray:
            from zoodeploy.predict.ray_engine import require_ray
            require_ray()


@dataclass(frozen=True)
class PredictSummary:
    out: Path
    variant: str
    engine: str
    rows: int  # one per input
    errors: int  # rows of files that could not be read
    resumed: int  # rows kept from an earlier run
    seconds: float

    @property
    def images_per_s(self) -> float:
        return (self.rows - self.resumed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        kept = f", {self.resumed} kept from the earlier run" if self.resumed else ""
        return (f"{self.rows} images ({self.errors} could not be read{kept}) with {self.variant} "
                f"({self.engine}) in {self.seconds:.1f} s, {self.images_per_s:.0f} images/s -> {self.out}")


def predict(artifact: Artifact | str | Path, inputs: Iterable[str | Path], config: PredictConfig) -> PredictSummary:
    """Predict every image the inputs name with one variant of `artifact`, into `config.out`."""
    start = time.perf_counter()
    art = Artifact.of(artifact)
    card = art.card
    variant = art.resolve_variant(config.variant)
    paths = expand_inputs(inputs)
    store = ShardStore(config.out, config.format, Schema(tuple(card.labels), config.top_k, config.logits),
                       config.shard_size)
    kept = store.open(_manifest(card, variant, paths, store), config.resume)
    pending = [i for i in range(store.num_shards(len(paths))) if i not in kept]
    done = {**kept, **_run(art, variant, paths, store, pending, config, kept)}
    store.assemble(store.num_shards(len(paths)))
    return PredictSummary(out=config.out, variant=variant.name, engine=config.engine.value,
                          rows=sum(d.rows for d in done.values()), errors=sum(d.errors for d in done.values()),
                          resumed=sum(d.rows for d in kept.values()), seconds=time.perf_counter() - start)


def _run(art: Artifact, variant: Variant, paths: list[str], store: ShardStore,
         pending: list[int], config: PredictConfig, kept: dict[int, ShardDone]) -> dict[int, ShardDone]:
    if not pending:
        return {}
    if config.engine is Engine.ray:
        from zoodeploy.predict.ray_engine import run_ray
        return run_ray(art.path, variant.name, paths, store, batch=config.batch or DEFAULT_BATCH,
                       workers=config.workers, threads=config.threads, address=config.ray_address, progress=config.progress)
    from zoodeploy.predict.local import run_local
    batch, streams = local_settings(variant, config)
    # no spinning: the decoding threads need the cores the model's idle threads would spin on
    with open_runner(art, variant.name, RunOptions(threads=config.threads, spin=False, streams=streams)) as runner:
        return run_local(runner, paths, art.card.preprocessing, store, pending, batch, config.workers,
                         config.progress, sum(d.rows for d in kept.values()))


DEFAULT_BATCH = 32


def local_settings(variant: Variant, config: PredictConfig) -> tuple[int, int]:
    """(images per model call, requests in flight) for the local engine: the batch asked for, one
    request at a time; without one, what `bench --throughput` found fastest for the variant (each call
    then takes a batch per request in flight), else DEFAULT_BATCH."""
    best = variant.settled_throughput
    if config.batch is not None or best is None:
        return config.batch or DEFAULT_BATCH, 1
    return best.images, best.streams


def _manifest(card: ModelCard, variant: Variant, paths: list[str], store: ShardStore) -> dict:
    """What a resumed run must share with the run it continues."""
    return {"inputs": len(paths), "inputs_sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest(),
            "model": card.name, "variant": variant.name, "variant_sha256": variant.sha256,
            "columns": store.schema.names, "format": store.fmt.value, "shard_size": store.shard_size}
