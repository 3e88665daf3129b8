"""Several requests in flight for a runtime without streams of its own: `streams` runners, each with
its share of the threads, on as many Python threads.

ONNX Runtime releases the GIL while a session runs, so two sessions of one thread each keep two
cores busy on two batches at once, where one session of two threads spends part of each layer
waiting for its slower thread (small models, small batches: most of the time). One batch handed to
`run` is cut into one part per runner; every part runs at once and the logits come back in order.
OpenVINO has streams of its own and does this itself (`runtime.openvino`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from zoodeploy.runtime.base import Closing, Runner, RunOptions, split_batch

OpenOne = Callable[[RunOptions], Runner]


def stream_options(options: RunOptions) -> RunOptions:
    """What each of `options.streams` runners is opened with: its share of the threads, one stream."""
    return replace(options, threads=max(1, options.num_threads // options.streams), streams=1)


class ConcurrentRunner(Closing):
    """`streams` runners of one variant behind the Runner interface; `run` keeps them all busy."""

    def __init__(self, open_one: OpenOne, options: RunOptions):
        self.streams = options.streams
        self._stack = ExitStack()
        one = stream_options(options)
        try:
            self.runners = [self._stack.enter_context(open_one(one)) for _ in range(self.streams)]
        except BaseException:
            self._stack.close()
            raise
        first = self.runners[0]
        self.name, self.input_shape = first.name, first.input_shape
        fixed = getattr(first, "batch", None)
        self.batch = fixed * self.streams if fixed else None  # a fixed-batch export: one full batch per runner
        self.settings: dict[str, Any] = {**first.settings, "mode": f"{self.streams} sessions in flight",
                                         "config": {**first.settings.get("config", {}), "streams": str(self.streams)}}
        self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="stream")

    def run(self, x: np.ndarray) -> np.ndarray:
        parts = split_batch(x, self.streams)
        return np.concatenate(list(self._pool.map(lambda r, p: r.run(p), self.runners, parts)))

    def close(self) -> None:
        self._pool.shutdown()
        self._stack.close()
