"""`zoodeploy predict` on real digits images with the trained lenet5: the same answers as the
variant's runner on the arrays `zoodeploy evaluate` uses, unreadable files as counted error rows,
a run killed with SIGKILL and resumed equal to an uninterrupted one, and Ray equal to local."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from predict_helpers import N_IMAGES, read_rows

from zoodeploy.card import load_card
from zoodeploy.predict import PredictConfig, expand_inputs, predict
from zoodeploy.preprocess import softmax
from zoodeploy.runtime import RunOptions, open_runner


def reference_logits(artifact: Path, variant: str, digits) -> np.ndarray:
    """What `zoodeploy evaluate` computes: the test split preprocessed as the card says, through the runner."""
    x = digits.test.arrays(load_card(artifact).preprocessing)[:N_IMAGES]
    runner = open_runner(artifact, variant, RunOptions(threads=1))
    try:
        return np.concatenate([runner.run(x[i:i + 16]) for i in range(0, len(x), 16)])
    finally:
        runner.close()


@pytest.mark.parametrize("variant,suffix", [("fp32", ".parquet"), ("fp32", ".csv"), ("int8", ".jsonl")])
def test_rows_equal_the_evaluate_path(optimized, digits, digit_pngs, tmp_path, variant, suffix):
    art = optimized("lenet5")
    out = tmp_path / f"preds{suffix}"
    s = predict(art, [digit_pngs[0].parent], PredictConfig(out=out, variant=variant, top_k=3, batch=7,
                                                           shard_size=16, logits=True, threads=1))
    assert (s.rows, s.errors, s.resumed, s.variant) == (N_IMAGES, 0, 0, variant)
    assert out.is_file() and not out.with_name(out.name + ".parts").exists()
    rows = read_rows(out)
    assert [r["path"] for r in rows] == [str(p) for p in digit_pngs]
    ref = reference_logits(art, variant, digits)
    labels = load_card(art).labels
    logits = np.array([[r[f"logit_{lab}"] for lab in labels] for r in rows])
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5)
    probs = softmax(ref)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    assert [[r[f"label_{j}"] for j in (1, 2, 3)] for r in rows] == [[labels[t] for t in row] for row in top]
    np.testing.assert_allclose([r["prob_1"] for r in rows], probs.max(1), rtol=1e-5)
    assert all(r["error"] is None for r in rows)
    assert "prob_4" not in rows[0]


def test_unreadable_files_are_counted_error_rows(trained, digit_pngs, tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(digit_pngs[0].parent, folder)
    (folder / "empty.png").write_bytes(b"")
    (folder / "sub").mkdir()
    (folder / "sub" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.md").write_text("not an image suffix: a folder walk skips it")
    listing = tmp_path / "more.txt"
    first = digit_pngs[0].name
    listing.write_text(f"# listed paths are relative to the list\nimgs/{first}\nmissing.png\n\n")
    out = tmp_path / "preds.csv"
    s = predict(trained("lenet5"), [folder, listing], PredictConfig(out=out, variant="fp32", batch=8))
    rows = {Path(r["path"]).name: r for r in read_rows(out)}
    assert (s.rows, s.errors) == (N_IMAGES + 3, 3) and len(rows) == N_IMAGES + 3  # 000 once (deduplicated)
    for bad in ("empty.png", "corrupt.jpg", "missing.png"):
        assert rows[bad]["error"] and rows[bad]["label_1"] is None and rows[bad]["prob_1"] is None
    assert "no such file" in rows["missing.png"]["error"]
    assert rows[first]["error"] is None and rows[first]["label_1"] is not None
    assert "notes.md" not in rows


def test_expand_inputs_order_globs_and_lists(tmp_path):
    for name in ("b/2.png", "a/1.jpg", "a/deep/3.PNG", "a/skip.txt", "c.jpeg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "list.lst").write_text("c.jpeg\nb/2.png\n")
    got = expand_inputs([tmp_path / "a", str(tmp_path / "b" / "*.png"), tmp_path / "list.lst"])
    assert got == [str(tmp_path / p) for p in ("a/1.jpg", "a/deep/3.PNG", "b/2.png", "c.jpeg")]


def test_killed_run_resumes_to_the_same_output(trained, digit_pngs, tmp_path):
    """SIGKILL after three shards are written; --resume keeps them and redoes only the rest.

    The 25th input is a named pipe: decoding blocks on opening it, so the run is surely still
    going when it is killed. Before the resume the pipe is replaced by a real image.
    """
    art = trained("lenet5")
    fifo = tmp_path / "late.png"
    os.mkfifo(fifo)
    names = [str(p) for p in digit_pngs[:24]] + [str(fifo)] + [str(p) for p in digit_pngs[24:]]
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(names) + "\n")
    out = tmp_path / "preds.parquet"
    parts = tmp_path / "preds.parquet.parts"
    proc = subprocess.Popen([sys.executable, "-m", "zoodeploy", "predict", art, listing, "-o", out,
                             "--variant", "fp32", "--batch", "4", "--shard-size", "8", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (parts / "shard-00002.done.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no shard written in 120 s"
            time.sleep(0.1)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    assert not (parts / "shard-00003.done.json").exists()

    fifo.unlink()
    shutil.copy(digit_pngs[0], fifo)
    cfg = dict(variant="fp32", batch=4, shard_size=8)
    resumed = predict(art, [listing], PredictConfig(out=out, resume=True, **cfg))
    predict(art, [listing], PredictConfig(out=tmp_path / "whole.parquet", **cfg))
    assert (resumed.rows, resumed.resumed, resumed.errors) == (N_IMAGES + 1, 24, 0)
    assert read_rows(out) == read_rows(tmp_path / "whole.parquet")
    assert not parts.exists()


@pytest.mark.slow
def test_ray_engine_gives_the_local_rows(trained, digit_pngs, tmp_path):
    pytest.importorskip("ray.data")
    art = trained("lenet5")
    inputs = [digit_pngs[0].parent, tmp_path / "bad.jpg"]
    (tmp_path / "bad.jpg").write_bytes(b"")
    local = predict(art, inputs, PredictConfig(out=tmp_path / "local.jsonl", variant="fp32", batch=8, logits=True))
    ray = predict(art, inputs, PredictConfig(out=tmp_path / "ray.jsonl", variant="fp32", batch=8, logits=True,
                                             engine="ray", workers=2))
    assert (ray.rows, ray.errors, ray.engine) == (local.rows, local.errors, "ray") == (N_IMAGES + 1, 1, "ray")
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


def test_without_a_batch_asked_for_the_variants_best_throughput_settings_are_used(optimized, digits, digit_pngs,
                                                                                   tmp_path, monkeypatch):
    """`bench --throughput` recorded batch 4 x 2 requests in flight for fp32: predict runs calls of 8
    images on two sessions, with the same answers; a batch asked for still wins."""
    import zoodeploy.predict as bulk
    import zoodeploy.predict.local as local
    from zoodeploy.card import RunSettings, ThroughputStats, update_card
    art = tmp_path / "lenet5"
    shutil.copytree(optimized("lenet5"), art)
    with update_card(art) as card:
        card.variants["fp32"].throughput = ThroughputStats(throughput=1e4, batch=4, streams=2, threads=2, runs=9,
                                                           settings=RunSettings(runtime="onnxruntime", stable=True))
    opened, batches = [], []  # streams each runner was opened with, images per model call
    real_open, real_rows = bulk.open_runner, local.predict_rows
    monkeypatch.setattr(bulk, "open_runner", lambda *a: opened.append(a[2].streams) or real_open(*a))
    monkeypatch.setattr(local, "predict_rows", lambda r, names, *a: batches.append(len(names)) or real_rows(r, names, *a))
    out = tmp_path / "p.csv"
    predict(art, [digit_pngs[0].parent], PredictConfig(out=out, variant="fp32", logits=True, threads=2))
    assert opened == [2] and max(batches) == 8
    labels = load_card(art).labels
    logits = np.array([[r[f"logit_{lab}"] for lab in labels] for r in read_rows(out)])
    np.testing.assert_allclose(logits, reference_logits(art, "fp32", digits), rtol=1e-5, atol=1e-5)
    opened.clear()
    batches.clear()
    predict(art, [digit_pngs[0].parent], PredictConfig(out=tmp_path / "q.csv", variant="fp32", batch=5, threads=2))
    assert opened == [1] and max(batches) == 5
