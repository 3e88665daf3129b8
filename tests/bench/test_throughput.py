"""Throughput mode: which (batch, requests in flight) settings are tried, how images/s is counted
(every image of a call over its wall time), which setting is kept, and that the card keeps it.
Fake runners on a fake clock: nothing runs a model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from zoodeploy.artifact import put_variant
from zoodeploy.bench.latency import BenchConfig
from zoodeploy.bench.throughput import Setting, best, measure_throughput, settings_to_try, stream_counts
from zoodeploy.bench.variants import BenchResult, add_latency
from zoodeploy.card import LatencyStats, ModelCard, RunSettings, Variant
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe

CFG = BenchConfig(warmup=1, window=3, window_seconds=0.0, settle_seconds=0.0, min_runs=6, max_seconds=60.0)


class FakeRunner:
    """A call of n images with `streams` in flight takes `call_ms` per request plus `image_ms` per image
    of the longest request; `contention`: requests in flight slow each other down by that factor."""

    def __init__(self, clock, streams, call_ms, image_ms, contention=1.0):
        self.clock, self.streams, self.call_ms, self.image_ms = clock, streams, call_ms, image_ms
        self.slow = contention ** (streams - 1)
        self.batch, self.settings = None, {"runtime": "fake", "config": {"streams": str(streams)}}

    def run(self, x):
        self.clock.now += self.slow * (self.call_ms + self.image_ms * math.ceil(len(x) / self.streams)) / 1000

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_settings_tried_are_batches_times_streams_up_to_the_threads():
    assert stream_counts(1) == (1,) and stream_counts(2) == (1, 2) and stream_counts(6) == (1, 2, 4, 6)
    assert settings_to_try((1, 8), 2) == [Setting(1, 1), Setting(1, 2), Setting(8, 1), Setting(8, 2)]
    assert settings_to_try((1, 8), 2, fixed_batch=4) == [Setting(4, 1), Setting(4, 2)]  # a fixed-batch export
    assert Setting(8, 2).images == 16


def test_the_best_setting_is_the_most_images_per_second_among_stable_ones():
    def row(ips, stable=True):
        return LatencyStats(batch=1, runs=10, p50_ms=1, p90_ms=1, p99_ms=1, mean_ms=1, throughput=ips,
                            settings=RunSettings(runtime="fake", stable=stable))
    assert best({Setting(1, 1): row(100), Setting(8, 2): row(900, stable=False), Setting(8, 1): row(400)}) \
        == Setting(8, 1)
    assert best({Setting(1, 1): row(100, False), Setting(8, 1): row(400, False)}) == Setting(8, 1)


def test_images_per_second_counts_every_image_of_a_call_with_requests_in_flight(clock):
    """`streams` halves the per-image time of one variant (it has idle cores to fill) and slows the
    other (its requests fight over the cores): each keeps its own best, and images/s is images over time."""
    made = {"spare": (2.0, 1.0, 1.0), "busy": (1.0, 1.0, 2.5)}  # call_ms, image_ms, contention
    open_at = lambda name, streams: FakeRunner(clock, streams, *made[name])  # noqa: E731
    x = np.zeros((3, 3, 4, 4), np.float32)
    got = measure_throughput(["spare", "busy"], open_at, x, (1, 8), 2, CFG)
    spare, busy = got["spare"], got["busy"]
    assert (spare.batch, spare.streams) == (8, 2)
    assert spare.throughput == pytest.approx(16 / ((2.0 + 8 * 1.0) / 1000))  # 16 images in 10 ms
    assert (busy.batch, busy.streams) == (8, 1)
    assert busy.throughput == pytest.approx(8 / ((1.0 + 8 * 1.0) / 1000))
    assert set(spare.tried) == {"batch 1 x 1 in flight", "batch 1 x 2 in flight", "batch 8 x 1 in flight",
                                "batch 8 x 2 in flight"}
    assert spare.tried["batch 1 x 1 in flight"] == pytest.approx(1 / 0.003, rel=1e-3)
    assert spare.settings.runtime == "fake" and spare.settings.stable and spare.settings.config["streams"] == "2"
    assert busy.settings.config["streams"] == "1" and spare.threads == 2


def _variant(name):
    return Variant(name=name, file=f"{name}.onnx", sha256="s", precision="fp32", runtime="onnxruntime",
                   made_by="test", recipe=CopyRecipe(source="test"))


def test_the_card_keeps_the_best_throughput_across_runs_and_remakes_alike(clock):
    card = ModelCard(name="lenet5", num_classes=10, labels=list("0123456789"), preprocessing=Preprocessing(32, 32),
                     variants={"fp32": _variant("fp32")})
    x = np.zeros((1, 3, 4, 4), np.float32)
    found = measure_throughput(["fp32"], lambda n, s: FakeRunner(clock, s, 1.0, 1.0), x, (4,), 2, CFG)
    add_latency(card, BenchResult("run", 2, "cpu", 1.0, {}, {"fp32": {}}, {}, throughput=found))
    assert card.variants["fp32"].throughput == found["fp32"]
    again = ModelCard.model_validate_json(card.model_dump_json())  # through card.json and back
    assert again.variants["fp32"].throughput == found["fp32"]
    add_latency(card, BenchResult("later", 2, "cpu", 1.0, {}, {"fp32": {}}, {}))  # a run without --throughput
    assert card.variants["fp32"].throughput == found["fp32"]
    put_variant(card, _variant("fp32"))  # remade with the same bytes: its figures stay
    assert card.variants["fp32"].throughput == found["fp32"]


class DriftingRunner(FakeRunner):
    """Each call slower than the last: its windows never agree, so its timing never settles."""

    def run(self, x):
        super().run(x)
        self.call_ms *= 1.5


def test_a_setting_whose_timing_never_settled_is_marked_in_what_was_tried(clock):
    """Two requests in flight look fastest at first but never settle: the record keeps one request in
    flight, and the list of every setting tried says which figures were unsettled, so a faster-looking
    number beside the kept one does not pass for a better setting."""
    def open_at(name, streams):
        return (DriftingRunner if streams == 2 else FakeRunner)(clock, streams, 0.1, 1.0)
    got = measure_throughput(["v"], open_at, np.zeros((1, 3, 4, 4), np.float32), (8,), 2, CFG)["v"]
    assert (got.batch, got.streams) == (8, 1) and got.settings.stable
    assert set(got.tried) == {"batch 8 x 1 in flight", "batch 8 x 2 in flight (unstable)"}
