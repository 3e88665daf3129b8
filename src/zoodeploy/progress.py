"""Progress a person can follow in a log: plain timestamped lines with an estimate of what is left.

On a terminal the stages draw tqdm bars; in a log (stderr not a terminal: CI, `demo.sh > log`) bars
draw nothing, so long work says one line per unit done instead (an epoch, a pass, a timed batch
size), through a `Say` callable that the CLI makes with `log_say`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

Say = Callable[[str], None]


def quiet(line: str) -> None:
    pass


def log_say(stream=None) -> Say:
    """Lines as `HH:MM:SS text` on `stream` (stderr), flushed at once."""
    def say(line: str) -> None:
        out = stream or sys.stderr
        out.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        out.flush()
    return say


class Eta:
    """`done/total, ETA 40s` for work of `total` equal-ish units started now."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic):
        self.total, self.clock, self.start = max(total, 1), clock, clock()

    def after(self, done: int) -> str:
        elapsed = self.clock() - self.start
        left = elapsed / done * (self.total - done) if done else 0.0
        return f"{done}/{self.total}, {elapsed:.0f}s, ETA {left:.0f}s"
