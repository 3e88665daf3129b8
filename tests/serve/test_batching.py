"""The adaptive batcher in-process: concurrent requests share model runs, a request never waits for
company, errors and an over-budget wait reach only their own requests, and nothing is learned from
a burst (the CORK dispatcher it replaced kept a burst's wait for minutes: tests/serve/test_service.py
measures that on a real server)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from bentoml.exceptions import ServiceUnavailable
from prometheus_client import CollectorRegistry

from zoodeploy.serve.batching import Batcher


class Model:
    """Doubles its input; records the batch sizes it was run with; sleeps `ms` a run."""

    def __init__(self, ms: float = 0.0, fail_on: float | None = None):
        self.ms, self.fail_on, self.runs = ms, fail_on, []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.runs.append(len(x))
        time.sleep(self.ms / 1000)
        if self.fail_on is not None and (x == self.fail_on).any():
            raise RuntimeError("planted failure")
        return x * 2


def batcher(model: Model, max_batch: int = 8, max_latency_ms: int = 5000, single_ms: float = 10.0) -> Batcher:
    return Batcher(model, max_batch, max_latency_ms, "v", single_ms, registry=CollectorRegistry())


def rows(*values: float) -> list[np.ndarray]:
    return [np.full((1, 3), v, np.float32) for v in values]


def test_concurrent_requests_share_runs_and_each_gets_its_own_answer():
    model = Model(ms=20)

    async def go():
        b = batcher(model)
        return await asyncio.gather(*(b(x) for x in rows(*range(16))))

    out = asyncio.run(go())
    assert [float(o[0, 0]) for o in out] == [2.0 * i for i in range(16)]
    assert sum(model.runs) == 16 and len(model.runs) < 16 and max(model.runs) <= 8, model.runs


def test_after_a_burst_a_lone_request_runs_alone_at_once():
    model = Model(ms=5)

    async def go():
        b = batcher(model)
        await asyncio.gather(*(b(x) for x in rows(*range(32))))  # the burst
        model.runs.clear()
        waits = []
        for x in rows(1, 2, 3):
            start = time.perf_counter()
            await b(x)
            waits.append(time.perf_counter() - start - model.ms / 1000)
        return waits

    waits = asyncio.run(go())
    assert model.runs == [1, 1, 1]
    assert max(waits) < 0.05, waits  # no learned hold-back (CORK held such requests 15-34 ms)


def test_a_request_larger_than_the_batch_budget_runs_alone():
    model = Model()

    async def go():
        b = batcher(model, max_batch=4)
        return await asyncio.gather(b(np.ones((6, 3), np.float32)), b(np.ones((1, 3), np.float32)))

    big, small = asyncio.run(go())
    assert big.shape == (6, 3) and small.shape == (1, 3) and sorted(model.runs) == [1, 6]


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    model = Model(ms=10, fail_on=3.0)

    async def go():
        b = batcher(model)
        first = await asyncio.gather(*(b(x) for x in rows(1, 2, 3)), return_exceptions=True)
        return first, await b(rows(5)[0])

    first, after = asyncio.run(go())
    assert any(isinstance(r, RuntimeError) for r in first)
    assert float(after[0, 0]) == 10.0


def test_a_request_that_waited_past_the_budget_gets_a_503():
    model = Model(ms=60)

    async def go():
        b = batcher(model, max_batch=1, max_latency_ms=50)
        return await asyncio.gather(*(b(x) for x in rows(1, 2, 3)), return_exceptions=True)

    out = asyncio.run(go())
    assert isinstance(out[0], np.ndarray)
    assert any(isinstance(r, ServiceUnavailable) and "overloaded" in str(r) for r in out[1:]), out
