"""Accuracy-drift and latency-regression suite over trained zoo models.

Each model is trained on digits (the shared `trained` fixture), optimized with the real
`optimize()` (fuse + int8), then judged by the real gate (`zoodeploy.gate.check`):
- drift: each variant's top-1 on the held-out test split stays within its budget of fp32;
- latency: each variant's p50 ratio to fp32, timed interleaved in the same run, stays within
  MAX_SLOWDOWN of the ratio stored in tests/baselines/<cpu class>/<model>.json (measured on
  that class of CPU; on a class without one, this run records one). The margin is wide so the
  test holds on a busy 2-core machine; a real regression (a pass that stops fusing, a quantizer
  that wraps every op in casts) moves a ratio by far more.

Re-record the baselines (after a deliberate change) with
    ZOODEPLOY_UPDATE_BASELINES=1 pytest tests/evaluate/test_regression.py
or for one artifact: zoodeploy check ARTIFACT --max-drop 1.5 --baseline tests/baselines/CPU_CLASS/NAME.json
--update-baseline --threads 1
"""

import os
from pathlib import Path

import pytest

from zoodeploy.bench import BenchConfig
from zoodeploy.gate import GateConfig, check, host_isa_key

BASELINES = Path(__file__).resolve().parents[1] / "baselines"
MODELS = ["lenet5", "mobilenet_v2", "squeezenet1_1", "resnet18"]
INT8_BUDGET_PT = 1.5  # top-1 points an int8 variant may lose against fp32 on the test split
FUSED_BUDGET_PT = 0.3  # fusion only reorders float math: at most one image of 359 may flip
MAX_SLOWDOWN = 2.0
TIMING = BenchConfig(warmup=5, window=5, window_seconds=0.05, min_runs=20, max_seconds=4.0)
UPDATE = os.environ.get("ZOODEPLOY_UPDATE_BASELINES") == "1"


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_variants_stay_within_drift_and_latency_baselines(name, optimized, tmp_path):
    art = optimized(name)  # the real optimize(): fuse + int8; the gate only reads the artifact
    # ratios differ between CPU classes: a class with no committed baseline records one for this
    # run (the drift gate still holds; the latency gate then compares only within the run)
    baseline = BASELINES / host_isa_key() / f"{name}.json"
    update = UPDATE or not baseline.exists()
    if update and not UPDATE:
        baseline = tmp_path / baseline.name
    report = check(art, GateConfig(max_drop=INT8_BUDGET_PT, max_slowdown=None if update else MAX_SLOWDOWN,
                                   baseline=baseline, update_baseline=update, timing=TIMING,
                                   threads=1 if update else None))
    assert report.passed, "\n".join(f.line() for f in report.failures) + "\n" + "\n".join(report.notes)
    assert report.accuracy["fused"].drop_pt <= FUSED_BUDGET_PT, report.accuracy["fused"]
    assert set(report.ratios) == {"fused", "int8"}
    assert all(n in report.baseline.ratios for n in report.ratios), report.notes
