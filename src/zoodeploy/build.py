"""The whole pipeline in one call: train (or load weights), export, optimize for a target (its
passes, then one orchestrated evaluation and benchmark of every variant), select the fastest
variant within the accuracy budget, report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from zoodeploy.bench.latency import BenchConfig
from zoodeploy.artifact import MAX_SANE_SPEEDUP, Artifact, Objective, select
from zoodeploy.card import CARD_FILE, BuildRecord, LatencyStats, ModelCard
from zoodeploy.errors import ArtifactError, ZoodeployError
from zoodeploy.target import Device, Target, target_isa_for

if TYPE_CHECKING:
    from zoodeploy.models.sources import SourceConfig

# the heavy parts (torch, onnxruntime) are imported by the stages that use them, so that the
# `build` command answers a usage error at once

TARGET_PASSES: dict[Target, tuple[str, ...]] = {
    Target.cpu: ("fuse", "int8"),
    Target.mobile: ("fuse", "int8", "ort-format"),
    Target.gpu: ("fuse", "fp16", "trt-fp16", "trt-int8"),
}
# more rows for the selection, tried where this machine can run them: a pass whose module has
# `unavailable(name) -> reason | None` (OpenVINO not importable, no BF16 on this CPU) is skipped,
# and one that fails (a graph OpenVINO cannot compile) is left out; the build says which and why
TARGET_EXTRA_PASSES: dict[Target, tuple[str, ...]] = {
    Target.cpu: ("ov-fused", "ov-int8", "bf16", "int8-bf16", "mixed-bf16"),
}


@dataclass
class BuildConfig:
    model: str
    out: Path
    data: str = "digits"
    target: Target = Target.cpu
    max_drop: float = 1.0  # top-1 percentage points a selected variant may lose against fp32
    target_isa: str | None = None  # the CPU int8 is quantized for; None: arm64 for mobile, else host
    epochs: int | None = None  # default: the zoo entry's train_epochs; 0: use --weights untrained
    image_size: int | None = None
    weights: str | None = None  # imagenet or a checkpoint path
    batches: tuple[int, ...] = (1, 8, 32)  # bench sizes; the first decides the selection
    threads: int | None = None  # default: available cores
    seed: int = 0
    force: bool = False  # build into a directory that already holds an artifact
    timing: BenchConfig = field(default_factory=BenchConfig)
    select: Objective | None = None  # default: latency; size for mobile (its timing is not measurable here)
    max_latency_ms: float | None = None  # only variants whose p50 at the first batch is within it
    # a model that needs no training (zoodeploy.models.sources), deployed with its own data folders
    source: SourceConfig | None = None

    def __post_init__(self):
        try:
            self.target = Target(self.target)
        except ValueError:
            raise ZoodeployError(f"unknown --target {self.target!r}; use cpu, mobile or gpu") from None
        self.out = Path(self.out)
        if self.source is None:
            from zoodeploy.models.zoo import get_spec
            get_spec(self.model)  # unknown names fail here, with suggestions
        if self.max_drop < 0:
            raise ZoodeployError(f"--max-drop must be >= 0 percentage points, got {self.max_drop}")
        if self.epochs is not None and (self.epochs < 0 or (self.epochs == 0 and self.weights is None)):
            raise ZoodeployError("--epochs must be >= 1, or 0 together with --weights (use them untrained)")
        if (self.out / CARD_FILE).exists() and not self.force:
            raise ArtifactError(f"{self.out} already holds an artifact; choose another -o or pass --force")
        from zoodeploy.bench.variants import BenchOptions
        BenchOptions(batches=self.batches, threads=self.threads)  # validates them before hours of work
        self.select = Objective(self.select or (Objective.size if self.target is Target.mobile else Objective.latency))
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise ZoodeployError(f"--max-latency must be > 0 ms, got {self.max_latency_ms}")

    @property
    def device(self) -> Device:
        return self.target.device

    @property
    def passes(self) -> tuple[str, ...]:
        return TARGET_PASSES[self.target]

    @property
    def extra_passes(self) -> tuple[str, ...]:
        return TARGET_EXTRA_PASSES.get(self.target, ())


def clear_artifact(out: str | Path) -> list[str]:
    """Remove what an artifact in `out` is made of (the files its card names, its reports, its
    latency baseline, then the card), so a new model written there inherits nothing of the old
    one; other files are left alone. Returns the names removed."""
    import json
    from zoodeploy.bench.report import PARETO_FILE, REPORT_FILE
    from zoodeploy.export.onnx_export import PROGRAM_FILE
    from zoodeploy.gate import BASELINE_FILE
    out = Path(out)
    try:
        old = json.loads((out / CARD_FILE).read_text())
    except (OSError, ValueError):
        old = {}
    named = {old.get("checkpoint"), PROGRAM_FILE, REPORT_FILE, PARETO_FILE, BASELINE_FILE}
    for v in (old.get("variants") or {}).values():
        named |= {v.get("file"), (v.get("recipe") or {}).get("required_operators_config")}
    removed = []
    for name in sorted(n for n in named if n) + [CARD_FILE]:
        path = out / name
        if path.is_file() and path.resolve().parent == out.resolve():  # nothing outside `out`
            path.unlink()
            removed.append(name)
    return removed


Say = Callable[[str], None]
STAGES = ("train", "export", "optimize", "select", "report")


def build(cfg: BuildConfig, *, say: Say = lambda line: None, progress: bool = False) -> ModelCard:
    """Run every stage into `cfg.out`; `say` gets one line per stage. Returns the final card."""
    if cfg.target is Target.gpu:  # fail before training, not after
        from zoodeploy.runtime.gpu import import_tensorrt
        import_tensorrt()
    from zoodeploy.models.data import load_splits
    splits = None if cfg.source else load_splits(cfg.data, seed=cfg.seed)
    if cfg.force:
        clear_artifact(cfg.out)
    art = Artifact(cfg.out)  # one handle for every stage: the card, the data split and its arrays, once
    if splits is not None:
        art.use_splits(splits)
    for i, stage in enumerate(STAGES, 1):
        shown = "load" if stage == "train" and cfg.source else stage  # a source is taken as it is, not trained
        say(f"[{i}/{len(STAGES)}] {shown} …")
        start = time.perf_counter()
        summary = _STAGE_FUNCS[stage](cfg, art, progress, say)
        say(f"[{i}/{len(STAGES)}] {shown}: {summary} ({time.perf_counter() - start:.1f}s)")
    return art.card


def _train(cfg: BuildConfig, art: Artifact, progress: bool, say: Say) -> str:
    from zoodeploy.models.train import TrainConfig, init_artifact, train
    if cfg.source is not None:
        return _from_source(cfg)
    splits = art.splits()  # handed over by build: the card does not exist yet
    if cfg.epochs == 0:
        card = init_artifact(cfg.model, cfg.out, image_size=cfg.image_size, weights=cfg.weights, splits=splits)
        return f"{cfg.weights} weights used as they are, {card.input_size}px"
    tc = TrainConfig(cfg.model, data=cfg.data, image_size=cfg.image_size, epochs=cfg.epochs,
                     weights=cfg.weights, seed=cfg.seed)
    card = train(tc, cfg.out, splits=splits, progress=progress, force=cfg.force, say=None if progress else say)
    return (f"{card.training.epochs} epochs at {card.input_size}px, PyTorch test accuracy "
            f"{card.training.test_accuracy:.2f}%")


def _from_source(cfg: BuildConfig) -> str:
    from zoodeploy.models.sources import make_artifact, preprocessing_origin
    cfg.out.mkdir(parents=True, exist_ok=True)
    card = make_artifact(cfg.source, cfg.out)
    data = card.data
    skipped = f", {data.skipped} unreadable image(s) skipped" if data and data.skipped else ""
    match = f"; {data.labels_match}" if data and data.labels_match else ""
    return (f"no training: {card.source.kind} {card.name}, {card.num_classes} classes at {card.preprocessing.size_text}; "
            f"labels from {card.labels_source}; "
            f"data {data.source if data else 'none'} ({'labelled' if data and data.labelled else 'unlabelled'}"
            f"{match}{skipped}); preprocessing {card.preprocessing.describe()} "
            f"({preprocessing_origin(card.preprocessing_from)})")


def _export(cfg: BuildConfig, art: Artifact, progress: bool, say: Say) -> str:
    from zoodeploy.export import export_artifact
    if cfg.source is not None and art.card.checkpoint is None:
        return "fp32.onnx is the ONNX source itself"
    v = export_artifact(art)
    return f"{v.file}, max |logit error| vs PyTorch {v.validation.worst_abs_err:.2g}"


def _optimize(cfg: BuildConfig, art: Artifact, progress: bool, build_say: Say) -> str:
    """The target's passes and the extra ones this machine can run, then one measurement of every
    variant they made (fp32 and eager included) at every bench batch size, interleaved in one run."""
    from zoodeploy.optimize import Measure, OptimizeConfig
    from zoodeploy.optimize.pipeline import make_variants, measure_variants
    from zoodeploy.progress import write
    from zoodeploy.errors import OptimizeError
    from zoodeploy.optimize.passes import PASSES
    opt = OptimizeConfig(passes=cfg.passes + cfg.extra_passes, max_drop=cfg.max_drop, threads=cfg.threads,
                         progress=progress, target_isa=target_isa_for(cfg.target, cfg.target_isa),
                         calib_data=cfg.source.separate_calibration if cfg.source else None)
    ctx, say = opt.context(), write if progress else build_say  # in a log: a line per pass and batch
    skipped: dict[str, list[str]] = {}  # why -> passes
    extras = []
    for name in cfg.extra_passes:  # what this machine cannot run is skipped, not tried
        why = PASSES.get(name).why_not_here()
        if why:
            skipped.setdefault(why, []).append(name)
        else:
            extras.append(name)
    made = make_variants(art, cfg.passes + tuple(extras), ctx, Measure(evaluate=False, bench=False), say)
    for name, why in made.not_made.items():
        if name in cfg.passes:  # the target's own passes must all be made; an extra may fail alone
            raise made.errors.get(name) or OptimizeError(f"{cfg.target} pass {name} made nothing: {why}")
        skipped.setdefault(f"failed: {why}", []).append(name)
    made = [v.name for v in made]
    measure = Measure(batches=cfg.batches, threads=cfg.threads, device=cfg.device, eager=True, timing=cfg.timing,
                      throughput=cfg.select is Objective.throughput)  # images/s with requests in flight
    measure_variants(art, made, measure, say)
    with art.update() as card:  # for the select stage's record, and the report
        card.provenance.build = _record(cfg, card, not_made={n: why for why, names in skipped.items() for n in names})
    not_here = "".join(f"; not made: {', '.join(names)} ({why})" for why, names in skipped.items())
    return f"made {', '.join(made)}{not_here}; {_figures(art.card, cfg.batches[0])}"


def _figures(card: ModelCard, b: int) -> str:
    rows = {"eager": card.eager_latency.get(str(b)),
            **{n: v.latency.get(str(b)) for n, v in card.variants.items()}}
    measured = [(n, v.accuracy) for n, v in card.variants.items() if v.accuracy is not None]
    accuracy = ", ".join(f"{n} {a.score:.2f}%" + (f" ({a.change()} pt)" if n != "fp32" else "")
                         for n, a in measured)
    what = measured[0][1].what if measured else "accuracy"
    latency = ", ".join(f"{n} {s.p50_ms:.3g} ms" for n, s in rows.items() if s is not None)
    return f"test {what}: {accuracy}; p50 at batch {b}: {latency}"


def _select(cfg: BuildConfig, art: Artifact, progress: bool, say: Say) -> str:
    b = cfg.batches[0]
    sizes = {n: (art.path / v.file).stat().st_size for n, v in art.card.variants.items()
             if (art.path / v.file).is_file()}
    with art.update() as card:
        chosen = select(card, cfg.max_drop, b, objective=cfg.select, max_latency_ms=cfg.max_latency_ms, sizes=sizes)
        card.selected = chosen.name
        not_made = card.provenance.build.not_made if card.provenance.build else {}
        card.provenance.build = _record(cfg, card, rule=RULES[chosen.objective], objective=chosen.objective.value,
                                        why=chosen.notes, not_made=not_made)
    v = card.variants[card.selected]
    lat = v.latency.get(str(b))
    timing = f", p50 {lat.p50_ms:.3g} ms at batch {b} on this host{eager_ratio(lat)}" if lat else ""
    return (f"{chosen.line()}; {v.runtime}: {v.accuracy.summary()} ({v.accuracy.change()} pt "
            f"vs fp32){timing}")


def _record(cfg: BuildConfig, card: ModelCard, **more) -> BuildRecord:
    """What the build was asked for and ran (the extra passes that made a variant)."""
    from zoodeploy.optimize.passes import PASSES
    ran = [*cfg.passes, *(p for p in cfg.extra_passes if PASSES.get(p).makes in card.variants)]
    data = cfg.data if cfg.source is None else (cfg.source.eval_data or cfg.source.calib_data)
    return BuildRecord(target=cfg.target.value, max_drop=cfg.max_drop, select_batch=cfg.batches[0],
                       batches=list(cfg.batches), data=data, epochs=cfg.epochs, weights=cfg.weights, passes=ran, **more)


RULES = {Objective.latency: "lowest stable p50 at the select batch within max_drop of fp32 top-1",
         Objective.throughput: "most images/s (best stable batch x requests in flight) within max_drop of fp32 top-1",
         Objective.size: "smallest int8 file within max_drop of fp32 top-1 (timing not measured on the target)"}


def eager_ratio(lat: LatencyStats) -> str:
    """', 3.10x eager', or the ratio flagged when it is beyond belief or measured on shaky figures."""
    x = lat.speedup_vs_eager
    if not x:
        return ""
    if x > MAX_SANE_SPEEDUP:
        return f", {x:.3g}x eager (over {MAX_SANE_SPEEDUP:g}x: eager was likely slowed by a busy machine)"
    return f", {x:.2f}x eager"


def _report(cfg: BuildConfig, art: Artifact, progress: bool, say: Say) -> str:
    from zoodeploy.bench.report import write_report
    md, png = write_report(art)
    return f"{md}, {png}"


_STAGE_FUNCS = {"train": _train, "export": _export, "optimize": _optimize, "select": _select, "report": _report}
