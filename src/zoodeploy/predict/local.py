"""The local engine: the variant in this process, decoding on a thread pool that runs ahead.

Pillow's decoding and resizing and numpy's normalization release the GIL, so decoding threads
(the cores but one) decode batch i+1.. while the model runs batch i; at most `depth` batches
are in flight, which keeps memory flat however many inputs there are.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor


from zoodeploy.predict.batch import decode_batch, predict_rows
from zoodeploy.predict.output import Block, ShardDone, ShardStore, concat
from zoodeploy.preprocess import Preprocessing
from zoodeploy.progress import bar as progress_bar
from zoodeploy.runtime.base import available_cores


def run_local(runner, paths: list[str], prep: Preprocessing, store: ShardStore, pending: list[int],
              batch: int, workers: int | None, progress: bool, done_rows: int) -> dict[int, ShardDone]:
    """Predict the `pending` shards of `paths` into `store`; returns their counts."""
    # decoding threads: the cores but one, which the model's thread needs. Small images decode in
    # Python-bound steps under the GIL, where a second decoder only contends (32 px PNGs, 20,000
    # images, 2 cores: 1 thread 76-90% of offline, 2 threads 62-69%); at 224 px one decoder
    # still keeps up with the model (1 thread 87%, 2 threads 95% of offline)
    workers = workers or max(1, available_cores() - 1)
    depth = workers + 2  # enough decoded batches queued that the model never waits on one
    written: dict[int, ShardDone] = {}
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool, \
            progress_bar(total=len(paths), initial=done_rows, unit="img", desc="predict", file=sys.stderr,
                 disable=not progress, dynamic_ncols=True) as bar:
        queue: deque[tuple[int, list[str], bool, Future]] = deque()
        todo = _batches(paths, store.shard_size, pending, batch)
        blocks: list[Block] = []

        def submit() -> None:
            item = next(todo, None)
            if item is not None:
                queue.append((*item, pool.submit(decode_batch, item[1], prep)))

        for _ in range(depth):
            submit()
        while queue:
            shard, names, last, fut = queue.popleft()
            submit()
            blocks.append(predict_rows(runner, names, fut.result(), store.schema))
            bar.update(len(names))
            if last:
                written[shard] = store.write(shard, concat(blocks))
                blocks = []
    return written


def _batches(paths: list[str], shard_size: int, shards: list[int],
             batch: int) -> Iterator[tuple[int, list[str], bool]]:
    """(shard, paths of one batch, whether it ends its shard) for each batch of each shard."""
    for shard in shards:
        start, end = shard * shard_size, min((shard + 1) * shard_size, len(paths))
        for i in range(start, end, batch):
            yield shard, paths[i:min(i + batch, end)], i + batch >= end
