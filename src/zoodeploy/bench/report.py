"""`report.md` and `pareto.png` from the figures recorded in the card (nothing is re-measured)."""

from __future__ import annotations

from pathlib import Path

from zoodeploy.artifact import MAX_SANE_SPEEDUP, Artifact, rebuild_command, stale_reason
from zoodeploy.card import LatencyStats, ModelCard, RunSettings
from zoodeploy.errors import ArtifactError
from zoodeploy.fileio import atomic_path, write_text

REPORT_FILE = "report.md"
PARETO_FILE = "pareto.png"


def report_batch(card: ModelCard) -> int:
    """The batch size the report compares at: the build's, else the smallest measured."""
    chosen = card.provenance.build.select_batch if card.provenance.build else None
    measured = sorted({int(b) for v in card.variants.values() for b in v.latency})
    if chosen in measured:
        return chosen
    if not measured:
        raise ArtifactError(f"{card.name}: the card holds no latency figures; run `zoodeploy bench` first")
    return measured[0]


def write_report(artifact: Artifact | str | Path, batch: int | None = None) -> tuple[Path, Path]:
    """Write ARTIFACT/report.md and ARTIFACT/pareto.png; returns both paths."""
    art = Artifact.of(artifact)
    card = art.card
    batch = batch or report_batch(card)
    png = plot_pareto(card, batch, art.path / PARETO_FILE)
    md = write_text(art.path / REPORT_FILE, render_markdown(card, batch, png.name, str(art.path)))
    return md, png


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names not beaten on both latency (lower) and accuracy (higher), fastest first."""
    front, best = [], float("-inf")
    for name, (ms, acc) in sorted(points.items(), key=lambda kv: (kv[1][0], -kv[1][1])):
        if acc > best:
            front.append(name)
            best = acc
    return front


def _points(card: ModelCard, batch: int) -> dict[str, tuple[float, float]]:
    return {n: (v.latency[str(batch)].p50_ms, v.accuracy.score) for n, v in card.variants.items()
            if v.accuracy is not None and str(batch) in v.latency}


def plot_pareto(card: ModelCard, batch: int, out: Path) -> Path:
    """Top-1 against p50 latency for every variant; the Pareto front drawn, the selected one ringed."""
    import matplotlib.pyplot as plt
    fig, _, _ = pareto_figure(card, batch)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def pareto_figure(card: ModelCard, batch: int):
    """The Pareto plot as (figure, axes, the variants' name labels), laid out and ready to save."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = _points(card, batch)
    if not points:
        raise ArtifactError(f"{card.name}: no variant has both accuracy and batch-{batch} latency; "
                            "run `zoodeploy evaluate` and `zoodeploy bench` first")
    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=120)
    front = pareto_front(points)
    ax.step(*zip(*[points[n] for n in front]), where="post", color="tab:blue", alpha=0.35, lw=2,
            label="Pareto front")
    colors = plt.get_cmap("tab10").colors
    labels = []
    for i, (name, (ms, acc)) in enumerate(sorted(points.items(), key=lambda kv: kv[1][0])):
        stable = _settings_of(card.variants[name].latency[str(batch)]).stable is not False
        ax.scatter(ms, acc, s=60, zorder=3, color=colors[i % 10], marker="o" if name in front else "s",
                   facecolors=None if stable else "none", linewidths=1.5,
                   label=f"{name}: {ms:.3g} ms, {acc:.2f}%" + ("" if stable else " (unstable)"))
        labels.append(ax.annotate(name, (ms, acc), textcoords="offset points", xytext=(6, 7), fontsize=9))
    if any(_settings_of(v.latency[str(batch)]).stable is False for n, v in card.variants.items() if n in points):
        ax.scatter([], [], s=60, facecolors="none", edgecolors="gray", label="hollow: latency did not settle")
    _mark_eager(ax, card, batch, [ms for ms, _ in points.values()])
    _mark_budget(ax, card)
    if card.selected in points:
        ax.scatter(*points[card.selected], s=320, facecolors="none", edgecolors="tab:red", lw=2, zorder=4,
                   label=f"selected: {card.selected}")
    ax.set_xlabel(f"p50 latency at batch {batch} (ms, log scale; lower is better)")
    first = next(v.accuracy for v in card.variants.values() if v.accuracy)
    labelled = first.kind == "labelled"
    ax.set_ylabel(f"{first.what} on held-out images (%)")
    measure = "accuracy" if labelled else "agreement with fp32"
    ax.set_title(f"{card.name}: {measure} vs latency ({first.n} test images, {_threads(card, batch)})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title_fontsize=8,
              title="p50, top-1" if labelled else "p50, agreement")
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.15)
    ax.autoscale_view()
    _log_latency_axis(ax)
    fig.tight_layout()
    spread_labels(fig, labels)
    return fig, ax, labels


def _log_latency_axis(ax) -> None:
    """A log x axis labelled plainly at round values, as many as its span leaves room for, and
    nowhere else: matplotlib's default labels every minor tick of a span under a decade in
    scientific notation, and the labels run into each other. Call it once the limits are set."""
    import matplotlib.ticker
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ratio = hi / lo
    subs = tuple(range(1, 10)) if ratio < 3 else (1.0, 2.0, 5.0) if ratio < 100 else (1.0,)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs=tuple(range(1, 10))))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def spread_labels(fig, labels: list, step: float = 11.0, tries: int = 12) -> None:
    """Move each point's label up or down (alternately, further each try) until its box overlaps no
    label placed before it: variants of equal speed and accuracy (fp32 / fp16, fused / fused-ov)
    stay legible. Boxes are measured by the renderer, in display space."""
    renderer = fig.canvas.get_renderer()
    placed = []
    for label in labels:
        x, y = label.xyann
        for k in range(tries + 1):
            offset = (k + 1) // 2 * step * (1 if k % 2 else -1)
            label.xyann = (x, y + offset)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                break
        placed.append(label.get_window_extent(renderer))


EAGER_SPAN = 4.0  # eager is drawn in the plot only within this factor of the variants' latencies


def _mark_eager(ax, card: ModelCard, batch: int, variant_ms: list[float]) -> None:
    """Eager PyTorch as a reference line; when it lies far from the variants (a slow eager would
    squeeze them into a corner of the log axis), as a legend entry only, with its figure."""
    eager = card.eager_latency.get(str(batch))
    if eager is None:
        return
    label = f"PyTorch eager ({eager.p50_ms:.3g} ms)"
    if min(variant_ms) / EAGER_SPAN <= eager.p50_ms <= max(variant_ms) * EAGER_SPAN:
        ax.axvline(eager.p50_ms, color="black", alpha=0.6, ls="--", lw=1, label=label)
    else:
        ax.plot([], [], color="black", alpha=0.6, ls="--", lw=1, label=f"{label}, off the axis")


def _mark_budget(ax, card: ModelCard) -> None:
    max_drop = card.provenance.build.max_drop if card.provenance.build else None
    fp32 = card.variants.get("fp32")
    if max_drop is None or fp32 is None or fp32.accuracy is None:
        return
    ax.axhline(fp32.accuracy.score - max_drop, color="tab:red", ls=":", lw=1,
               label=f"accuracy budget (fp32 - {max_drop:g} pt)")


def _threads(card: ModelCard, batch: int) -> str:
    threads = {_settings_of(s).intra_op_threads for s in _all_stats(card, batch)}
    return "intra-op threads " + ", ".join(str(t) for t in sorted(threads, key=str))


def _settings_of(stats: LatencyStats) -> RunSettings:
    return stats.settings or RunSettings(runtime="unknown")


def _all_stats(card: ModelCard, batch: int) -> list[LatencyStats]:
    rows = [v.latency[str(batch)] for v in card.variants.values() if str(batch) in v.latency]
    return rows + ([card.eager_latency[str(batch)]] if str(batch) in card.eager_latency else [])


def render_markdown(card: ModelCard, batch: int, png: str, artifact: str) -> str:
    """The report: what was measured, on what, how to reproduce it."""
    parts = [f"# {card.name}: deployment report", "", *_summary(card, batch), "",
             "## Accuracy on the held-out test split", "", *_accuracy_table(card), "",
             "## Latency", "", *_latency_table(card), "", *_settings(card, batch), "",
             f"## Accuracy against latency (batch {batch})", "", f"![pareto]({png})", "",
             "## Reproduce", "", "```", f"zoodeploy evaluate {artifact}",
             f"zoodeploy bench {artifact} --batch {','.join(_batches(card))} --threads "
             f"{_one_threads(card)}", f"zoodeploy report {artifact}", "```", ""]
    return "\n".join(parts)


def _summary(card: ModelCard, batch: int) -> list[str]:
    lines = [f"- model: `{card.name}`, {card.num_classes} classes, input {'x'.join(map(str, card.input_shape))}, "
             f"weights: {card.weights}"]
    if card.data:
        lines.append(f"- data: `{card.data.source}`, split seed {card.data.seed}: "
                     + ", ".join(f"{k} {v}" for k, v in card.data.counts.items()) + " images")
    if card.training:
        t = card.training
        lines.append(f"- training: {t.epochs} epochs, best on val at epoch {t.best_epoch}; "
                     f"PyTorch test accuracy {t.test_accuracy:.2f}%")
    build = card.provenance.build
    if card.selected:
        rule = (f"{build.rule}; batch {build.select_batch}, budget {build.max_drop:g} pt, target {build.target}"
                if build else "chosen by hand")
        lines.append(f"- **selected: `{card.selected}`**: {rule}")
        lines += [f"  - {why}" for why in (build.why if build else [])]
    if build and build.not_made:
        lines.append("- passes not made: " + "; ".join(f"`{p}` ({why})" for p, why in build.not_made.items()))
    stale = [n for n in card.variants if stale_reason(card, n)]
    if stale:
        lines.append("- **stale** (made from a source that changed since): " + "; ".join(
            f"`{n}` ({stale_reason(card, n)}), rebuild with `{rebuild_command(card, n)}`" for n in stale))
    return lines


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _accuracy_table(card: ModelCard) -> list[str]:
    rows = [(n, v) for n, v in card.variants.items() if v.accuracy]
    if not rows:
        return ["No accuracy figures yet: run `zoodeploy evaluate`."]
    n = rows[0][1].accuracy.n
    kind = rows[0][1].accuracy.kind
    why = ("" if kind == "labelled" else " These images have no labels, so every figure is label-free: top-1 "
           "agreement with fp32, top-5 containment of fp32's class, and logit error; the drop is the "
           "agreement drop.")
    out = [f"{n} images the model never trained on; one image is {100 / n:.2f} pt.{why}", "",
           "| variant | precision | runtime | top-1 % | top-5 % | change vs fp32 (pt) | agreement with fp32 % "
           "| fp32 top-1 in top-5 % | max abs logit error | made by |", "|---|---|---|--:|--:|--:|--:|--:|--:|---|"]
    for name, v in rows:
        a = v.accuracy
        out.append(f"| {_sel(card, name)} | {v.precision} | {v.runtime} | {_fmt(a.top1, '.2f')} | {_fmt(a.top5, '.2f')} | "
                   f"{a.change()} | {_fmt(a.agreement, '.2f')} | {_fmt(a.top5_containment, '.2f')} | "
                   f"{_fmt(a.max_abs_err, '.3g')} | "
                   f"{v.made_by} |")
    return out


def _sel(card: ModelCard, name: str) -> str:
    return f"**{name}** (selected)" if name == card.selected else name


def _latency_table(card: ModelCard) -> list[str]:
    rows = [("PyTorch eager", s) for _, s in sorted(card.eager_latency.items(), key=lambda kv: int(kv[0]))]
    rows += [(_sel(card, n), s) for n, v in card.variants.items()
             for _, s in sorted(v.latency.items(), key=lambda kv: int(kv[0]))]
    if not rows:
        return ["No latency figures yet: run `zoodeploy bench`."]
    out = ["| variant | batch | p50 ms | p90 ms | p99 ms | throughput img/s | speed-up vs eager (x) | runs | stable |",
           "|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for name, s in sorted(rows, key=lambda r: r[1].batch):
        out.append(f"| {name} | {s.batch} | {s.p50_ms:.3f} | {s.p90_ms:.3f} | {s.p99_ms:.3f} | "
                   f"{s.throughput:,.0f} | {_fmt(s.speedup_vs_eager, '.2f')} | {s.runs} | "
                   f"{'yes' if _settings_of(s).stable else 'no'} |")
    return out


def _settings(card: ModelCard, batch: int) -> list[str]:
    stats = _all_stats(card, batch)
    if not stats:
        return []
    every = [s for v in card.variants.values() for s in v.latency.values()] + list(card.eager_latency.values())
    runs = sorted({_settings_of(s).run_id or "?" for s in every})
    s = next((_settings_of(s) for s in stats if _settings_of(s).runtime == "onnxruntime"), _settings_of(stats[0]))
    b = s.bench
    timing = (f"after {b.warmup} warm-up runs, until {b.windows} successive windows agreed within "
              f"{100 * b.stability:.0f}%" if b else "with the default stopping rule")
    lines = [f"Measured on {s.host or '?'}, intra-op threads {s.intra_op_threads} for every "
             f"backend; ONNX Runtime {s.version or '?'}, providers {s.providers or '?'}, graph "
             f"optimization {s.graph_optimization or '?'}, spinning {s.spinning}; process peak "
             f"memory {s.process_peak_rss_mb or '?'} MiB. Timed on real test images, interleaved, {timing}.",
             "Speed-ups compare medians (p50) within one run."]
    wild = [s for s in every if (s.speedup_vs_eager or 0) > MAX_SANE_SPEEDUP]
    if wild:
        lines.append(f"**Note:** {len(wild)} row(s) claim more than {MAX_SANE_SPEEDUP:g}x over PyTorch eager: eager "
                     "was likely slowed by other work on the machine (it is timed at 1 and N threads and the "
                     "better kept); treat those speed-ups as unproven.")
    unsettled = [s for s in every if not _settings_of(s).stable]
    if unsettled:
        lines.append(f"**Note:** {len(unsettled)} of {len(every)} rows did not settle before the time limit (the "
                     "machine was busy, or the limit is short): their percentiles are less certain; re-run "
                     "`zoodeploy bench` on a quiet machine or with a larger `--max-seconds`.")
    if len(runs) > 1:
        lines.append(f"**Note:** these figures come from {len(runs)} separate runs ({', '.join(runs)}); "
                     "ratios across runs carry the machine's drift. Re-run `zoodeploy bench` for one run.")
    return lines


def _batches(card: ModelCard) -> list[str]:
    return [str(b) for b in sorted({int(b) for v in card.variants.values() for b in v.latency})]


def _one_threads(card: ModelCard) -> str:
    for v in card.variants.values():
        for s in v.latency.values():
            return str(_settings_of(s).intra_op_threads or "")
    return ""
