"""Opening runners: each runtime's module imported only when one of its variants is opened, and
threads by default the cores this process may run on, not the host's count."""

import os
import subprocess
import sys

import pytest

from zoodeploy.runtime import RunOptions


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_default_threads_follow_the_affinity_mask():
    saved = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(saved)})  # as taskset, a container's cpuset or a pinned test worker
        assert RunOptions().num_threads == 1  # not os.cpu_count(): two threads on one core spin and fight
        assert RunOptions(threads=3).num_threads == 3
    finally:
        os.sched_setaffinity(0, saved)
    assert RunOptions().num_threads == len(saved)


def test_onnx_variants_run_without_importing_pytorch_or_scikit_learn(trained):
    """A server or `zoodeploy evaluate` on ONNX variants starts without them (seconds and hundreds of
    MB each); the eager baseline without PyTorch installed is one line naming what to install."""
    code = f"""
import sys
import numpy as np
from zoodeploy.errors import MissingDependencyError
from zoodeploy.evaluate import evaluate_variants
from zoodeploy.runtime import RunOptions, open_runner
art = {str(trained("lenet5"))!r}
r = open_runner(art, "fp32", RunOptions(threads=1))
r.run(np.zeros((1, *r.input_shape), np.float32))
evaluate_variants(art, ["fp32"], record=False)  # digits, rendered and split
print("torch" in sys.modules, "sklearn" in sys.modules)
sys.modules["torch"] = None  # what an image without PyTorch looks like to Python
try:
    open_runner(art, "eager")
except MissingDependencyError as e:
    print("refused:", e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "False False", lines
    assert lines[1].startswith("refused: PyTorch") and "pip install torch" in lines[1] and len(lines) == 2
