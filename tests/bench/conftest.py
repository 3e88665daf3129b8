"""One fake clock for the timing tests: time moves only when a fake model runs or a pause sleeps."""

import pytest

from zoodeploy.bench import latency, variants


class FakeClock:
    """`now` in seconds; `model(name, cost)` is a call that takes `cost(nth call of name)` seconds."""

    def __init__(self):
        self.now = 0.0
        self.log = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s

    def model(self, name, cost):
        def call():
            self.log.append(name)
            self.now += cost(len([n for n in self.log if n == name]))
        return call


@pytest.fixture
def clock(monkeypatch):
    """The fake clock in place of the timing loop's clock, its sleep and the re-measure pause."""
    c = FakeClock()
    monkeypatch.setattr(latency, "_clock", c)
    monkeypatch.setattr(latency, "_sleep", c.sleep)
    monkeypatch.setattr(variants, "_pause", c.sleep)
    return c
