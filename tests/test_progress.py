"""Progress: on a terminal a rich bar (nested bars share one display, lines print above them and are
never read as markup); in a log no bar frames at all, the lines timestamped instead."""

import io
import re

import pytest
from rich.console import Console

from zoodeploy import progress
from zoodeploy.progress import bar, stage_say


@pytest.fixture
def terminal(monkeypatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=True, width=100))
    return out


@pytest.fixture
def log(monkeypatch, capsys):
    """stderr captured: not a terminal, as in `zoodeploy build > log 2>&1`."""
    monkeypatch.setattr(progress, "console", Console(stderr=True, force_terminal=False))
    return capsys


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_a_terminal_gets_nested_bars_and_lines_above_them(terminal):
    say = stage_say()
    for epoch in bar(range(2), desc="epochs", unit="epoch", leave=False):
        with bar(total=3, desc="calibrate", unit="batch") as inner:
            for _ in range(3):
                inner.update()
            inner.set_postfix(loss="0.125")
        say(f"epoch {epoch} [done]")
    shown = _plain(terminal.getvalue())
    assert "epochs" in shown and "calibrate" in shown and "3/3" in shown and "loss=0.125" in shown
    assert "epoch 0 [done]" in shown and "epoch 1 [done]" in shown  # markup-like text kept as it is
    assert progress._live.progress is None  # the display stopped with its last bar


def test_a_log_gets_timestamped_lines_and_no_bar_frames(log):
    say = stage_say()
    items = list(bar(range(3), desc="epochs"))
    with bar(total=2, desc="predict") as b:
        b.update(2)
    say("epoch 1/3: loss 0.5 (1/3, 2s, ETA 4s)")
    assert items == [0, 1, 2]
    assert re.fullmatch(r"\d\d:\d\d:\d\d epoch 1/3: loss 0\.5 \(1/3, 2s, ETA 4s\)\n", log.readouterr().err)


def test_json_mode_says_nothing(log):
    stage_say(enabled=False)("epoch 1/3")
    assert log.readouterr().err == ""
