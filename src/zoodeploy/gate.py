"""The deployment gate: accuracy drift against a budget, latency against a stored baseline.

It sits above `evaluate` and `bench` and uses both. Latency is judged as a *ratio* to the fp32
variant timed in the same interleaved run, never as an absolute time: a busy machine slows both
alike, so the ratio holds where milliseconds do not. A variant fails when its ratio exceeds the
baseline's by more than the allowed factor. Ratios differ between CPU classes (INT8 gains most
with VNNI), so a baseline records the ISA class it was measured on and is only compared there.
Drift is judged where the model will run: a variant with figures from the device of the card's
target ISA (`zoodeploy evaluate --on arm64`) is judged on those, every other one is measured here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoodeploy.bench.latency import BenchConfig
from zoodeploy.bench.variants import BenchOptions, BenchResult, bench_variants, host_info
from zoodeploy.progress import Say, quiet
from zoodeploy.artifact import REFERENCE, Artifact, target_figures, variant_name
from zoodeploy.card import Accuracy, ModelCard, versions
from zoodeploy.errors import GateError, ZoodeployError
from zoodeploy.evaluate.accuracy import evaluate_variants, runnable_variants
from zoodeploy.fileio import write_json
from zoodeploy.models.data import Splits
from zoodeploy.target import TargetIsa, resolve_target

BASELINE_FILE = "latency-baseline.json"
RATIO_METRIC = "p50 latency / fp32 p50 latency, timed interleaved in one run"


class LatencyBaseline(BaseModel):
    """What `check --update-baseline` stores: each variant's latency ratio to fp32."""

    model_config = ConfigDict(extra="forbid")
    model: str
    isa: str | None = None  # the CPU class measured on (optimize.isa.TargetIsa); None: recorded before ISA keys
    metric: str = RATIO_METRIC
    batch: int
    threads: int
    ratios: dict[str, float]
    measured: dict[str, Any] = Field(default_factory=dict)  # when, where, with what


@dataclass
class GateConfig:
    max_drop: float  # top-1 percentage points a variant may lose against fp32
    max_slowdown: float | None = None  # factor over the baseline ratio; None: latency not gated
    baseline: Path | None = None  # default: ARTIFACT/latency-baseline.json
    update_baseline: bool = False  # store this run's ratios (when accuracy passes)
    variants: list[str] | None = None  # default: every variant the CPU can run
    batch: int | None = None  # default: the baseline's, else 1
    threads: int | None = None  # default: the baseline's, else every available core
    timing: BenchConfig = field(default_factory=BenchConfig)

    def __post_init__(self):
        if self.max_drop < 0:
            raise ZoodeployError(f"--max-drop must be >= 0 percentage points, got {self.max_drop}")
        if self.max_slowdown is not None and self.max_slowdown < 1:
            raise ZoodeployError(f"--max-slowdown is a factor over the baseline ratio and must be >= 1, "
                                 f"got {self.max_slowdown}")
        if (self.batch is not None and self.batch < 1) or (self.threads is not None and self.threads < 1):
            raise ZoodeployError("--batch and --threads must be >= 1")

    @property
    def gates_latency(self) -> bool:
        return self.max_slowdown is not None or self.update_baseline


@dataclass(frozen=True)
class Failure:
    variant: str
    metric: str  # accuracy | latency
    message: str

    def line(self) -> str:
        return f"FAIL {self.variant} {self.metric}: {self.message}"


@dataclass
class GateReport:
    accuracy: dict[str, Accuracy]
    ratios: dict[str, float]  # variant p50 / fp32 p50 in the same run
    bench: BenchResult | None
    baseline: LatencyBaseline | None
    baseline_path: Path | None
    failures: list[Failure]
    notes: list[str]
    updated: bool = False
    measured_on: dict[str, str] = field(default_factory=dict)  # variant -> the ISA its figures come from

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": [f.__dict__ for f in self.failures], "notes": self.notes,
                "accuracy": {n: a.model_dump(mode="json") for n, a in self.accuracy.items()},
                "measured_on": self.measured_on,
                "ratios": self.ratios, "baseline": self.baseline.model_dump() if self.baseline else None,
                "baseline_path": str(self.baseline_path) if self.baseline_path else None,
                "baseline_updated": self.updated, "bench": self.bench.to_dict() if self.bench else None}


def load_baseline(path: Path) -> LatencyBaseline | None:
    """The stored baseline, None when the file does not exist yet."""
    if not path.exists():
        return None
    try:
        return LatencyBaseline.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise GateError(f"{path} is not a latency baseline ({e.errors()[0]['loc']}: {e.errors()[0]['msg']}); "
                        "fix it or recreate it with --update-baseline") from None


def check(artifact: str | Path, cfg: GateConfig, *, splits: Splits | None = None,
          progress: bool = False, say: Say = quiet) -> GateReport:
    """Measure every variant's drift and latency ratio and judge them, on the card's test split or
    on `splits` (both preprocessed once, for both measurements); never writes the card. `say` gets
    a line per step, for logs."""
    art = Artifact.of(artifact)
    if splits is not None:
        art = Artifact(art.path, art.card)  # a handle of its own: other data, never the card's
        art.use_splits(splits)
    card = art.card
    if REFERENCE not in card.variants:
        raise GateError(f"{card.name}: the gate compares variants with {REFERENCE!r}, which the card lacks; "
                        "run `zoodeploy export` first")
    names = _gated_variants(card, cfg)
    path = cfg.baseline or art.path / BASELINE_FILE
    baseline = load_baseline(path) if cfg.gates_latency else None
    _check_baseline_matches(baseline, card, cfg, path)
    on_target = {n: found for n in names if n != REFERENCE and (found := target_figures(card, n))}
    say(f"measuring the drift of {', '.join(n for n in names if n not in on_target) or 'none'} on the test split")
    accuracy = evaluate_variants(art, [n for n in names if n not in on_target], record=False, progress=progress)
    here = host_isa_key()
    measured_on = {n: on_target[n][0] if n in on_target else here for n in names}
    accuracy = {n: on_target[n][1] if n in on_target else accuracy[n] for n in names}
    where = {n: f"the {isa} device" if n in on_target else f"this {isa} host" for n, isa in measured_on.items()}
    failures = [f for n in names if n != REFERENCE for f in _accuracy_failures(n, accuracy[n], cfg, where[n])]
    report = GateReport(accuracy, {}, None, baseline, path if cfg.gates_latency else None, failures,
                        _target_notes(on_target, here), measured_on=measured_on)
    if cfg.gates_latency:
        say(f"timing {', '.join(names)}")
        _gate_latency(art, names, cfg, report, progress, say)
    return report


def _gated_variants(card: ModelCard, cfg: GateConfig) -> list[str]:
    names = [variant_name(card, n) for n in cfg.variants] if cfg.variants else list(runnable_variants(card))
    for name in names:
        card.variant(name)
    return [REFERENCE] + [n for n in names if n != REFERENCE]


def _check_baseline_matches(baseline: LatencyBaseline | None, card: ModelCard, cfg: GateConfig, path: Path):
    if cfg.update_baseline or not cfg.gates_latency:
        return
    if baseline is None:
        raise GateError(f"no latency baseline at {path}; record one with `zoodeploy check ARTIFACT "
                        f"--max-drop {cfg.max_drop:g} --baseline {path} --update-baseline`")
    here = host_isa_key()
    if baseline.isa is not None and baseline.isa != here:
        raise GateError(f"{path} was measured on a {baseline.isa} CPU, this one is {here}; latency ratios differ "
                        "between CPU classes: pass --baseline for this CPU or record one with --update-baseline")
    if baseline.model != card.name:
        raise GateError(f"{path} is a baseline for {baseline.model}, not {card.name}; pass --baseline for "
                        f"{card.name} or record one with --update-baseline")
    for what, want, got in (("batch", baseline.batch, cfg.batch), ("threads", baseline.threads, cfg.threads)):
        if got is not None and got != want:
            raise GateError(f"{path} was measured with {what} {want}, this check asks for {got}; ratios at other "
                            f"settings are not comparable: use --{what} {want} or --update-baseline")


def _target_notes(on_target: dict[str, tuple[str, Accuracy]], here: str) -> list[str]:
    """Which variants are judged on figures from their target ISA's device, and where the rest were measured."""
    by_isa: dict[str, list[str]] = {}
    for name, (isa, _) in on_target.items():
        by_isa.setdefault(isa, []).append(name)
    return [f"{', '.join(names)}: drift from the card's figures measured on the {isa} device (`zoodeploy "
            f"evaluate --on {isa}`, vs fp32 on that device); the other variants measured now on this {here} host"
            for isa, names in by_isa.items()]


def _accuracy_failures(name: str, acc: Accuracy, cfg: GateConfig, where: str) -> list[Failure]:
    if acc.drop_pt is None or acc.drop_pt <= cfg.max_drop:
        return []
    return [Failure(name, "accuracy", f"{acc.what} dropped {acc.drop_pt:.2f} pt > budget {cfg.max_drop:g} pt "
                                      f"on {where} ({acc.score:.2f}% vs fp32 {acc.score + acc.drop_pt:.2f}%, "
                                      f"agreement {acc.agreement:.1f}%, n={acc.n} test images)")]


def _gate_latency(art: Artifact, names: list[str], cfg: GateConfig, report: GateReport, progress: bool,
                  say: Say = quiet) -> None:
    base = report.baseline
    keep = base is not None and not cfg.update_baseline
    batch = cfg.batch or (base.batch if keep else 1)
    threads = cfg.threads or (base.threads if keep else None)
    opts = BenchOptions(variants=names, batches=(batch,), threads=threads, eager=False, timing=cfg.timing)
    report.bench = bench_variants(art, opts, record=False, progress=progress, say=say)
    rows = {n: report.bench.variants[n][batch] for n in names}
    ref = rows[REFERENCE]
    report.ratios = {n: s.p50_ms / ref.p50_ms for n, s in rows.items() if n != REFERENCE}
    unstable = [n for n, s in rows.items() if not (s.settings and s.settings.stable)]
    if unstable:
        report.notes.append(f"timings of {', '.join(unstable)} did not settle within "
                            f"{cfg.timing.max_seconds:g}s (busy machine?); ratios are less certain")
    if cfg.update_baseline:
        _update_baseline(report, art.card, batch, opts.threads, ref.p50_ms)
        return
    for n, ratio in report.ratios.items():
        if n not in base.ratios:
            report.notes.append(f"{n}: no baseline ratio in {report.baseline_path}; add it with --update-baseline")
        elif ratio > base.ratios[n] * cfg.max_slowdown:
            report.failures.append(Failure(n, "latency", (
                f"{ratio:.2f}x fp32 latency > baseline {base.ratios[n]:.2f}x * {cfg.max_slowdown:g} = "
                f"{base.ratios[n] * cfg.max_slowdown:.2f}x (p50 {rows[n].p50_ms:.3f} ms vs fp32 "
                f"{ref.p50_ms:.3f} ms, batch {batch}, {opts.threads} threads)")))


def _update_baseline(report: GateReport, card: ModelCard, batch: int, threads: int, fp32_ms: float) -> None:
    """Store the run's ratios, keeping entries for variants not measured this time."""
    if report.failures:
        report.notes.append("baseline not updated: the accuracy gate failed")
        return
    old = report.baseline
    same = old and (old.batch, old.threads, old.model, old.isa) == (batch, threads, card.name, host_isa_key())
    ratios = dict(old.ratios) if same else {}
    ratios.update({n: round(r, 4) for n, r in report.ratios.items()})
    report.baseline = LatencyBaseline(
        model=card.name, isa=host_isa_key(), batch=batch, threads=threads, ratios=ratios,
        measured={"run_id": report.bench.run_id, "fp32_p50_ms": round(fp32_ms, 4), "host": host_info()["cpu"],
                  "versions": versions()})
    write_json(report.baseline_path, report.baseline.model_dump())
    report.updated = True


def host_isa_key() -> str:
    """This CPU's class, the key latency baselines are stored under: x86-avx2, x86-vnni or arm64."""
    return resolve_target(TargetIsa.host).value
