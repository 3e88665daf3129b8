"""The Ray engine: Ray Data maps batches of paths through an actor pool, one runner per actor.

`ray.data.from_items` holds the paths (with their index), `map_batches` runs `RayPredictor`
(a callable class: each actor loads the artifact once) on `batch_size` paths at a time with
`concurrency` actors, and Ray writes the rows as Parquet (`write_parquet`) under OUT.parts/.
The driver then reads them back in input order and writes OUT through the same shards as the
local engine. Decoding happens in the actors, so the workers must be able to read the artifact,
the images and OUT.parts/ at the paths given here (on a cluster: a shared file system mounted
at the same path on every node).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from zoodeploy.errors import MissingDependencyError, ZoodeployError, first_line
from zoodeploy.predict.batch import decode_batch, predict_rows
from zoodeploy.predict.output import Schema, ShardDone, ShardStore, concat, to_arrow
from zoodeploy.runtime.base import available_cores

INDEX = "_index"  # input order: Ray Data does not keep it
# model batches per Ray call: each call costs Ray's own bookkeeping (the batch serialised to the
# actor, the result turned into a block), about what LeNet-5 takes for 32 images at 32 px
CALL_BATCHES = 8


def require_ray() -> None:
    """A one-line error naming the extra, without importing Ray (that takes seconds)."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.data") is None:
        raise MissingDependencyError("Ray Data (for --engine ray)", "pip install 'zoodeploy[ray]'")


class RayPredictor:
    """One per actor: the variant's runner, opened once, applied to each call's paths, `batch` at a time."""

    def __init__(self, artifact: str, variant: str, schema: Schema, threads: int, batch: int):
        from zoodeploy.artifact import Artifact
        from zoodeploy.runtime import RunOptions, open_runner
        art = Artifact(artifact)
        card = art.card
        self.prep, self.schema, self.batch = card.preprocessing, schema, batch
        self.runner = open_runner(art, variant, RunOptions(threads=threads, spin=False))

    def __call__(self, batch: dict):
        paths = [str(p) for p in batch["path"]]
        parts = (paths[i:i + self.batch] for i in range(0, len(paths), self.batch))  # one model batch in memory
        block = concat([predict_rows(self.runner, p, decode_batch(p, self.prep), self.schema) for p in parts])
        return to_arrow(block, self.schema).append_column(INDEX, __import__("pyarrow").array(batch[INDEX]))


def run_ray(artifact: Path, variant: str, paths: list[str], store: ShardStore, *, batch: int,
            workers: int | None, threads: int | None, address: str | None, progress: bool) -> dict[int, ShardDone]:
    """Predict every shard of `paths` into `store` on a Ray cluster (a local one without `address`)."""
    import ray
    started = not ray.is_initialized()
    if started:  # quiet: the workers' logs and Ray's INFO lines would bury the summary
        logging.getLogger("ray").setLevel(logging.ERROR)
        kw = dict(logging_level=logging.ERROR, log_to_driver=progress)
        ray.init(address=address, **kw) if address else ray.init(
            num_cpus=workers or available_cores(), include_dashboard=False, **kw)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = progress
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        ds = ray.data.from_items([{INDEX: i, "path": p} for i, p in enumerate(paths)],
                                 override_num_blocks=max(1, min(len(paths) // batch, 4 * actors)))
        # a fixed pool of `actors` (ActorPoolStrategy: Ray 2.9 and later; `concurrency=` is deprecated in 2.51)
        ds = ds.map_batches(RayPredictor, batch_size=batch * CALL_BATCHES, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1, fn_constructor_kwargs={
                                "artifact": str(Path(artifact).absolute()), "variant": variant,
                                "schema": store.schema, "threads": threads or 1, "batch": batch})
        parts = store.dir / "ray"
        ds.write_parquet(str(parts))
    except ray.exceptions.RayError as e:
        first = next((line.strip() for line in str(e).splitlines() if "Error" in line), None)  # the cause's line
        raise ZoodeployError(f"the Ray run failed: {first[:300] if first else first_line(e)}") from None
    finally:
        if started:
            ray.shutdown()
    return _gather(parts, store, len(paths))


def _gather(parts: Path, store: ShardStore, n: int) -> dict[int, ShardDone]:
    """Ray's Parquet files back in input order, as the store's shards."""
    import pyarrow.dataset as pds
    table = pds.dataset(parts, format="parquet").to_table().sort_by(INDEX)
    if table.num_rows != n:
        raise ZoodeployError(f"the Ray run wrote {table.num_rows} rows for {n} inputs; rerun it")
    table = table.drop_columns([INDEX])
    written = {}
    for i in range(store.num_shards(n)):
        block = table.slice(i * store.shard_size, store.shard_size).to_pydict()
        written[i] = store.write(i, block)
    return written
