"""report.md and pareto.png: every figure in them is the card's, and the plot is a real image."""

import re
import shutil

import numpy as np
import pytest
from PIL import Image

from zoodeploy.bench import BenchConfig, BenchOptions, bench_variants
from zoodeploy.bench.report import pareto_front, write_report
from zoodeploy.card import load_card, save_card
from zoodeploy.errors import ArtifactError
from zoodeploy.evaluate import evaluate_variants

FAST = BenchConfig(warmup=3, window=5, window_seconds=0.01, min_runs=15, max_seconds=0.5)  # bookkeeping only


def test_pareto_front():
    pts = {"fp32": (1.0, 97.0), "fused": (0.8, 97.0), "int8": (0.5, 96.0), "slow": (2.0, 96.5), "bad": (0.6, 90.0)}
    assert pareto_front(pts) == ["int8", "fused"]


@pytest.fixture(scope="module")
def measured(optimized, tmp_path_factory):
    art = tmp_path_factory.mktemp("report") / "lenet5"
    shutil.copytree(optimized("lenet5"), art)
    evaluate_variants(art)
    bench_variants(art, BenchOptions(batches=(1, 8), threads=1, timing=FAST))
    return art


def test_report_holds_the_cards_figures(measured, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(measured, art)
    card = load_card(art)
    card.selected = "int8"
    save_card(art, card)
    md_path, png_path = write_report(art)
    md = md_path.read_text()
    for name, v in card.variants.items():
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} |") or ln.startswith(f"| **{name}**"))
        assert f"| {v.accuracy.top1:.2f} |" in row and f"| {v.accuracy.top5:.2f} |" in row
        for b, s in v.latency.items():
            lat = next(ln for ln in md.splitlines() if re.match(rf"\| (\*\*)?{name}(\*\*)?( \(selected\))? \| {b} \|", ln))
            assert f"| {s.p50_ms:.3f} | {s.p90_ms:.3f} | {s.p99_ms:.3f} |" in lat
            assert f"| {s.speedup_vs_eager:.2f} |" in lat and f"| {s.runs} |" in lat
    assert "**int8** (selected)" in md
    assert f"| PyTorch eager | 1 | {card.eager_latency['1'].p50_ms:.3f} |" in md
    assert "359 images the model never trained on" in md
    assert f"zoodeploy bench {art} --batch 1,8 --threads 1" in md
    assert "![pareto](pareto.png)" in md
    with Image.open(png_path) as im:
        assert im.format == "PNG" and im.size[0] >= 600 and im.size[1] >= 400
        assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 50  # drawn on, not blank


def test_report_needs_figures(trained, tmp_path):
    art = tmp_path / "a"
    shutil.copytree(trained("lenet5"), art)
    with pytest.raises(ArtifactError, match="zoodeploy bench"):
        write_report(art)


@pytest.mark.parametrize("span", [(0.41, 0.63), (0.085, 0.12), (0.15, 0.9), (0.5, 4.0), (0.07, 0.3), (1.2, 480.0)])
def test_latency_axis_labels_never_overlap(span):
    """matplotlib's own log axis labels every minor tick of a short span, and at the width the
    report's plot leaves the axis (0.15-0.9 ms, 0.5-4 ms) the labels collide."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoodeploy.bench.report import _log_latency_axis
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=120)  # the axis width left beside the legend
    ax.scatter(span, (95.0, 96.0))
    ax.set_xscale("log")
    ax.margins(x=0.15)
    ax.autoscale_view()
    _log_latency_axis(ax)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lo, hi = ax.get_xlim()
    boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels(which="both")
                    if t.get_text() and lo <= t.get_position()[0] <= hi), key=lambda b: b.x0)
    plt.close(fig)
    assert len(boxes) >= 2, "an axis needs at least two labels to be read"
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [(b.x0, b.x1) for b in boxes]
