"""The plot and report a person reads: labels of coinciding points never overlap (their boxes are
measured), an unstable point is hollow with a legend entry, a far eager figure is a legend entry
instead of stretching the axis, label-free data is worded as agreement, and passes that were not
made are listed with their reason. Cards made in memory: no model runs."""

import pytest

from zoodeploy.bench.report import pareto_figure, render_markdown
from zoodeploy.card import Accuracy, BuildRecord, LatencyStats, ModelCard, Provenance, RunSettings, Variant
from zoodeploy.preprocess import Preprocessing
from zoodeploy.recipes import CopyRecipe


def _row(ms, stable=True):
    return LatencyStats(batch=1, runs=50, p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms, throughput=1000 / ms,
                        settings=RunSettings(runtime="onnxruntime", stable=stable, intra_op_threads=2))


def _card(kind="labelled", eager_ms=2910.0):
    figures = {"fp32": (0.0, 0.40), "fp16": (0.0, 0.40), "fused": (0.0, 0.30), "fused-ov": (0.0, 0.31),
               "int8": (0.3, 0.2)}

    def acc(drop):
        if kind == "labelled":
            return Accuracy(n=359, top1=97 - drop, top5=100, drop_pt=drop)
        return Accuracy(n=359, kind="agreement", agreement=100 - drop, drop_pt=drop)
    variants = {n: Variant(name=n, file=f"{n}.onnx", sha256="-", precision="fp32", runtime="onnxruntime",
                           made_by="test", recipe=CopyRecipe(source="-"), accuracy=acc(d),
                           latency={"1": _row(ms, stable=n != "int8")}) for n, (d, ms) in figures.items()}
    card = ModelCard(name="lenet5", num_classes=10, labels=list("0123456789"), preprocessing=Preprocessing(32, 32),
                     variants=variants, selected="fused", eager_latency={"1": _row(eager_ms)})
    card.provenance = Provenance(build=BuildRecord(target="cpu", max_drop=1.0, select_batch=1, batches=[1],
                                                   not_made={"ov-int8": "failed: OpenVINO cannot compile a node"}))
    return card


@pytest.fixture
def figure():
    import matplotlib.pyplot as plt
    made = []

    def make(card):
        made.append(pareto_figure(card, 1))
        return made[-1]
    yield make
    for fig, _, _ in made:
        plt.close(fig)


def test_labels_of_coinciding_points_do_not_overlap(figure):
    fig, _, labels = figure(_card())
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            assert not box_a.overlaps(box_b), f"labels {a!r} and {b!r} overlap"


def test_unstable_points_are_hollow_and_a_far_eager_is_a_legend_entry(figure):
    fig, ax, _ = figure(_card())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "hollow: latency did not settle" in legend and any(t.endswith("(unstable)") for t in legend)
    assert any("PyTorch eager (2.91e+03 ms), off the axis" == t for t in legend)
    assert ax.get_xlim()[1] < 10  # the variants (0.2-0.4 ms) fill the axis, not eager's 2.9 s


def test_label_free_plots_say_agreement(figure):
    _, ax, _ = figure(_card(kind="agreement"))
    assert "agreement with fp32 vs latency" in ax.get_title() and "accuracy" not in ax.get_title()
    assert ax.get_legend().get_title().get_text() == "p50, agreement"


def test_the_report_lists_passes_not_made_with_their_reason():
    md = render_markdown(_card(), 1, "pareto.png", "art")
    assert "- passes not made: `ov-int8` (failed: OpenVINO cannot compile a node)" in md


def test_a_speed_up_beyond_belief_is_flagged_in_the_report():
    card = _card()
    card.variants["int8"].latency["1"].speedup_vs_eager = 572.1  # what a busy machine made of eager
    md = render_markdown(card, 1, "pareto.png", "art")
    assert "1 row(s) claim more than 30x over PyTorch eager" in md
