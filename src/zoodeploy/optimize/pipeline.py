"""The one orchestrator: run passes, then evaluate and time each new variant once.

`optimize`, `compile` and `build` all come here. Passes make and validate their variant;
this module measures accuracy and drift on the held-out test split (`evaluate`) and latency
against a reference variant in one interleaved run (`bench`), and notes in the card what a
person must know (an INT8 variant that is not faster on this CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zoodeploy.bench.latency import BenchConfig
from zoodeploy.artifact import FUSED, REFERENCE, Artifact
from zoodeploy.bench.variants import BenchOptions, BenchResult, add_latency, bench_variants
from zoodeploy.card import LatencyStats, ModelCard, Precision, Speed, Variant
from zoodeploy.evaluate.accuracy import evaluate_variants
from zoodeploy.target import Isa, detect_isa
from zoodeploy.errors import OptimizeError, ZoodeployError, first_line
from zoodeploy.optimize.passes import PASSES, PassContext, parse_passes, plan_passes
from zoodeploy.optimize.record import STALE, making
from zoodeploy.progress import Say, quiet
from zoodeploy.runtime import RunOptions
from zoodeploy.target import needs_gpu

# batch-1 latency for the card: enough runs for a stable median, bounded so a sweep stays short
SPEED_BENCH = BenchConfig(warmup=5, window=20, min_runs=40, max_runs=1000, max_seconds=8.0)


@dataclass
class Measure:
    """How the orchestrator measures what the passes made."""

    evaluate: bool = True  # accuracy and drift on the held-out test split (when the card has data)
    bench: bool = True  # latency of each new variant and the reference, in one interleaved run
    batches: tuple[int, ...] = (1,)  # the first is the one speed-ups are noted at
    threads: int | None = None
    device: str = "cpu"
    eager: bool = False  # time the PyTorch model in the same run (build does)
    throughput: bool = False  # also each variant's most images/s over batches x requests in flight
    timing: BenchConfig = field(default_factory=lambda: SPEED_BENCH)


class Made(list):
    """The variants a run made, in the order made; `not_made` maps each pass that made nothing to
    one line saying why (it failed, or a pass it needs did), so one failure never hides the rest;
    `errors` holds the failed passes' own errors."""

    def __init__(self, variants=()):
        super().__init__(variants)
        self.not_made: dict[str, str] = {}
        self.errors: dict[str, ZoodeployError] = {}


def make_variants(artifact: Artifact | str | Path, passes: list[str] | tuple[str, ...], ctx: PassContext,
                  measure: Measure | None = None, say: Say = quiet) -> Made:
    """Run `passes` (and those they need) on the artifact, then measure every variant they made.

    A pass that fails records nothing and is listed in `not_made` with its reason, and the passes
    that need its variant with theirs; the others go on. Only when none of the passes asked for
    made its variant is that an error (the pass's own, when one was asked for)."""
    art = Artifact.of(artifact)
    measure = measure or Measure()
    card = art.card
    card.variant(REFERENCE)  # a clear error before any work when there is no fp32 model
    plan = plan_passes(passes, card)
    if any(p.gpu for p in plan):  # a missing GPU or TensorRT is said before any work is done
        from zoodeploy.runtime.gpu import import_tensorrt
        import_tensorrt()
    made = Made()
    for i, p in enumerate(plan, 1):
        lost = next((d for d in p.needs if d in made.not_made), None)
        if lost:
            made.not_made[p.name] = f"needs {PASSES.get(lost).makes}, which {lost} did not make"
            continue
        say(f"{p.doing} {card.name} in {art.path} (pass {i}/{len(plan)}: {p.name})")
        try:
            with making(p):  # the variant lands with its pass and source's sha256 (optimize.record)
                made.append(p.run(art, ctx))
        except ZoodeployError as e:
            made.errors[p.name] = e
            made.not_made[p.name] = first_line(e)  # said by the caller, with what was made
    asked = set(parse_passes(passes))  # each planned pass either made its variant or is in not_made
    if asked <= made.not_made.keys():
        _nothing_made(asked, made)
    for name, v in art.card.variants.items():  # what the passes left stale, said once
        for line in v.notes:
            if line.startswith(STALE):
                say(f"{name} is {line}")
    measure_variants(art, [v.name for v in made], measure, say)
    made[:] = [art.card.variants[v.name] for v in made]
    return made


def _nothing_made(asked: set[str], made: Made) -> None:
    """None of the passes asked for made its variant: the one pass's own error, else all of them."""
    if len(asked) == 1 and (only := next(iter(asked))) in made.errors:
        raise made.errors[only]
    raise OptimizeError("none of the passes asked for made its variant: "
                        + "; ".join(f"{name} ({why})" for name, why in made.not_made.items()))


def measure_variants(artifact: Artifact | str | Path, names: list[str], measure: Measure, say: Say = quiet) -> None:
    """Accuracy and drift, then latency and speed-up against the reference, of `names`."""
    art = Artifact.of(artifact)
    card = art.card
    if measure.evaluate and card.data is not None:
        todo = names + [REFERENCE] * (card.variants[REFERENCE].accuracy is None and REFERENCE not in names)
        say(f"measuring accuracy and drift of {', '.join(todo)} on the test split")
        evaluate_variants(art, todo, options=RunOptions(threads=measure.threads, device=measure.device))
    if measure.bench:
        runnable = [n for n in names if measure.device == "cuda" or not needs_gpu(card.variants[n])]
        if runnable or measure.eager:
            say(f"measuring latency at batch {', '.join(map(str, measure.batches))}")
            result = time_against_reference(art, runnable, measure, say)
            record_speed(art, result, speed_at=measure.batches[0])


def reference_name(names: dict) -> str:
    """What speed-ups are measured against: fused fp32 when there is one, else fp32."""
    return FUSED if FUSED in names else REFERENCE


def time_against_reference(art: Artifact, names: list[str], measure: Measure, say: Say = quiet) -> BenchResult:
    timed = list(dict.fromkeys([REFERENCE, reference_name(art.card.variants), *names]))
    opts = BenchOptions(variants=timed, batches=measure.batches, threads=measure.threads, device=measure.device,
                        eager=measure.eager, throughput=measure.throughput, timing=measure.timing)
    return bench_variants(art, opts, record=False, say=say)


def record_speed(artifact: Artifact | str | Path, result: BenchResult, speed_at: int | None = None,
                   isa: Isa | None = None) -> ModelCard:
    """Store a timing run's figures in the card (bench.variants.add_latency), and with `speed_at`
    each timed variant's speed-up over the reference at that batch and what a person must know;
    one card update for both."""
    art = Artifact.of(artifact)
    isa = isa or detect_isa()
    with art.update() as card:
        add_latency(card, result)
        if speed_at is not None:
            note_speed(card, result, speed_at, isa)
    return card


def note_speed(card: ModelCard, result: BenchResult, batch: int, isa: Isa) -> None:
    """Each timed variant's speed-up over the reference at `batch`, and what a person must know."""
    ref_name = reference_name(result.variants)
    ref = result.variants[ref_name][batch]
    for name, rows in result.variants.items():
        if name == ref_name:
            continue
        v, stats = card.variants[name], rows[batch]
        v.speed = Speed(reference=ref_name, batch=batch, p50_ms=round(stats.p50_ms, 4),
                        reference_p50_ms=round(ref.p50_ms, 4), speedup=round(ref.p50_ms / stats.p50_ms, 3),
                        threads=stats.settings.intra_op_threads if stats.settings else None)
        v.notes = [*v.notes, *(n for n in speed_notes(v, stats, ref, ref_name, isa) if n not in v.notes)]


def speed_notes(v: Variant, stats: LatencyStats, ref: LatencyStats, ref_name: str, isa: Isa) -> list[str]:
    """What a person must know about a measured latency (a slower "optimized" variant)."""
    threads = stats.settings.intra_op_threads if stats.settings else None
    where = (f"{stats.p50_ms:.3f} ms vs {ref_name} fp32 {ref.p50_ms:.3f} ms at batch {stats.batch}, "
             f"{threads} thread(s), {isa.summary}")
    if v.precision in (Precision.int8, Precision.mixed) and stats.p50_ms >= ref.p50_ms:
        return [f"{v.name} is not faster than {ref_name} fp32 on this CPU: {where}"]
    if v.precision == Precision.fp16 and v.runtime == "onnxruntime" and stats.p50_ms > ref.p50_ms:
        return [f"fp16 is for GPU targets; on this CPU it is slower: {where} (ONNX Runtime wraps fp16 ops "
                "in casts where it has no fp16 CPU kernel)"]
    return []
