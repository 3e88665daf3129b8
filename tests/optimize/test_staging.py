"""Optimize's scratch folders carry the pid that made them: a killed run's are removed by the
next run, a live run's are left alone, and a finished run leaves none of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile

from zoodeploy.optimize import Measure, OptimizeConfig, optimize


def test_a_killed_runs_staging_is_removed_by_the_next_run(optimized, tmp_path, monkeypatch):
    art, temp = tmp_path / "a", tmp_path / "temp"
    shutil.copytree(optimized("lenet5"), art)
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a pid whose process has exited
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphans = [temp / f"zoodeploy-quant.zd-{gone}-x1", art / f".zoodeploy-control.zd-{gone}-x2"]
        busy = [temp / f"zoodeploy-quant.zd-{alive.pid}-x3", art / f".zoodeploy-control.zd-{alive.pid}-x4"]
        for d in orphans + busy:
            (d / "prepared.onnx.data").parent.mkdir()
            (d / "prepared.onnx.data").write_bytes(b"\0" * 1024)
        optimize(art, OptimizeConfig(passes=("int8",), max_drop=0.5, calib_size=32, threads=1),
                 Measure(evaluate=False, bench=False))
        assert not any(d.exists() for d in orphans)
        assert all(d.exists() for d in busy)
        assert sorted(p.name for p in temp.iterdir()) == sorted(d.name for d in busy[:1])  # none of its own left
        assert not [p for p in art.iterdir() if ".zd-" in p.name and p not in busy]
    finally:
        alive.kill()
