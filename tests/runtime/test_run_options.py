"""Threads by default: the cores this process may run on, not the host's count."""

import os

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
