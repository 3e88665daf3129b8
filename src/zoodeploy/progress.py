"""Progress a person can follow: rich bars on a terminal, plain timestamped lines with an estimate of
what is left in a log.

On a terminal (stderr a TTY, as rich judges it) long work draws bars (`bar`, a drop-in for the tqdm
calls it replaced) and its lines print above them (`write`). In a log (CI, `demo.sh > log`) a bar
would draw nothing useful, so long work says one line per unit done instead (an epoch, a pass, a
timed batch size) through a `Say` callable: `stage_say` picks the one for where stderr goes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rich.console import Console

Say = Callable[[str], None]

# The one stderr console: the CLI prints through it too, so its lines land above the bars (rich
# draws one live display per console, which the bars share)
console = Console(stderr=True)


def quiet(line: str) -> None:
    pass


def log_say(stream=None) -> Say:
    """Lines as `HH:MM:SS text` on `stream` (stderr), flushed at once."""
    def say(line: str) -> None:
        out = stream or sys.stderr
        out.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        out.flush()
    return say


def on_terminal() -> bool:
    """Whether a person watches stderr: bars there; in a log, timestamped lines."""
    return console.is_terminal


def write(line: str, file=None) -> None:
    """One line on stderr: above the bars on a terminal (never read as markup), else as it is.
    A drop-in for `tqdm.write(line, file=sys.stderr)`."""
    if on_terminal():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        out = file or sys.stderr
        out.write(line + "\n")
        out.flush()


def stage_say(enabled: bool = True) -> Say:
    """Where a long stage's lines go: above the bars on a terminal, timestamped in a log (`log_say`);
    nowhere when not `enabled` (--json, whose stdout a program reads)."""
    if not enabled:
        return quiet
    return write if on_terminal() else log_say()


class Eta:
    """`done/total, ETA 40s` for work of `total` equal-ish units started now."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic):
        self.total, self.clock, self.start = max(total, 1), clock, clock()

    def after(self, done: int) -> str:
        elapsed = self.clock() - self.start
        left = elapsed / done * (self.total - done) if done else 0.0
        return f"{done}/{self.total}, {elapsed:.0f}s, ETA {left:.0f}s"


class Bar:
    """A bar that draws nothing (a log, --json, or `disable`); what `bar` returns there. It has the
    part of tqdm's interface the stages use: iterate, `update`, `set_postfix(_str)`, `close`, `with`."""

    def __init__(self, iterable: Iterable | None = None):
        self.iterable = iterable

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        pass

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in values.items()))

    def close(self) -> None:
        pass


class _RichBar(Bar):
    """One task of the shared live display; removed from it on close unless `leave`."""

    def __init__(self, iterable: Iterable | None, task: int, leave: bool):
        super().__init__(iterable)
        self.task, self.leave, self.closed = task, leave, False

    def update(self, n: float = 1) -> None:
        _live.progress.advance(self.task, n)

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        _live.progress.update(self.task, postfix=text)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _live.finish(self.task, self.leave)


class _Live:
    """The bars open at one time, drawn together (nested work: bench's batch sizes and their
    timing windows); the display starts with the first and stops when the last closes."""

    def __init__(self):
        self.progress = None
        self.open = 0

    def add(self, desc: str, total: float | None, unit: str, initial: float) -> int:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        if self.progress is None:
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), TextColumn("{task.fields[postfix]}"),
                                console=console, redirect_stdout=False)  # stdout stays the program's
            progress.start()  # LiveError: another display holds this console (rich < 14)
            self.progress = progress
        self.open += 1
        return self.progress.add_task(desc, total=total, completed=initial, unit=unit, postfix="")

    def finish(self, task: int, leave: bool) -> None:
        if not leave:
            self.progress.remove_task(task)
        self.open -= 1
        if self.open == 0:
            self.progress.stop()
            self.progress = None


_live = _Live()


def bar(iterable: Iterable | None = None, *, desc: str = "", total: float | None = None, unit: str = "it",
        disable: bool | None = False, leave: bool = True, initial: float = 0, **tqdm_display: Any) -> Bar:
    """A rich bar on a terminal, else one that draws nothing (a log gets `stage_say` lines instead).

    Takes tqdm's arguments, so that a stage switches by changing its import; `disable=None` (tqdm's
    "not on a terminal") means what every bar here does anyway. tqdm's display options (`file`,
    `dynamic_ncols`, ...) have no meaning for rich and are ignored."""
    if disable or not on_terminal():
        return Bar(iterable)
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    from rich.errors import LiveError
    try:
        task = _live.add(desc, total, unit, initial)
    except LiveError:  # rich < 14 with another live display (a console.status) on: no bar, as in a log
        return Bar(iterable)
    return _RichBar(iterable, task, leave)
