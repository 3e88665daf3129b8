"""ONNX Runtime's own best INT8 on this CPU: schemes, weight granularity, QDQ placement and session
options, timed interleaved in one run per model and batch (not a pass/fail test).

    .venv/bin/python benchmarks/ort_int8_options.py [--models resnet50,mobilenet_v2,squeezenet1_1]
        [--threads 2] [--quick]

Each model is the zoo entry at 224x224, random-initialised and exported, fused as `zoodeploy
optimize` fuses it, then quantized from that fused model with ONE set of calibration ranges
(128 digits training images, minmax, Concat ranges shared: zoodeploy's Quantizer) in every
form below, so only the form differs:

* scheme: what zoodeploy picks here (`scheme_for`: u8s8 with VNNI, u8s8-reduce-range on AVX2
  and AVX-512 without it, s8s8 on ARM), u8s8 full range, s8s8, u8u8;
* weights per channel (zoodeploy's) or per tensor;
* placement: Q/DQ around every op ORT's QDQ registry knows (zoodeploy's: Conv, Add, Concat,
  pooling, ...) or around Conv/Gemm/MatMul only, the rest left in float;
* session: ORT_ENABLE_ALL (zoodeploy's: its layout transformers run int8 convs NHWC) or
  ORT_ENABLE_EXTENDED (no layout transformers); `session.x64quantprecision=1` (exact U8U8 kernels
  for u8s8 where the CPU lacks VNNI); `session.qdqisint8allowed=1` (keep s8 activations as s8).

Rows print p50 ms at batch 1 and 8 on `--threads` threads, the speed-up over zoodeploy's current
form (first row), and top-1 agreement with the fused fp32 model on digits' 359 test images with
the largest logit error relative to fp32's logit range (random weights: only agreement and error
mean anything, not accuracy). Every form is timed in interleaved windows with a settle pause
before each (zoodeploy.bench.latency), so ratios within one model and batch are comparable.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODELS = ("resnet50", "mobilenet_v2", "squeezenet1_1")
SIZE = 224
CALIB_SIZE = 128
ANCHORS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class Form:
    label: str
    scheme: str = "auto"
    per_channel: bool = True
    op_types: tuple[str, ...] | None = None  # None: every op type ORT quantizes
    level: str = "ORT_ENABLE_ALL"
    entries: dict[str, str] = field(default_factory=dict)

    @property
    def quantization(self) -> tuple:
        return self.scheme, self.per_channel, self.op_types


FORMS = (
    Form("zoodeploy int8 (auto scheme, per-channel, all ops, ENABLE_ALL)"),
    Form("  ... ORT_ENABLE_EXTENDED (no NHWC layout)", level="ORT_ENABLE_EXTENDED"),
    Form("  ... weights per tensor", per_channel=False),
    Form("  ... Q/DQ on Conv/Gemm/MatMul only", op_types=ANCHORS),
    Form("u8s8 full range", scheme="u8s8"),
    Form("u8s8 full range + x64quantprecision=1", scheme="u8s8", entries={"session.x64quantprecision": "1"}),
    Form("s8s8", scheme="s8s8"),
    Form("s8s8 + qdqisint8allowed=1", scheme="s8s8", entries={"session.qdqisint8allowed": "1"}),
    Form("u8u8", scheme="u8u8"),
)


def fused_artifact(name: str, root: Path, splits, threads: int) -> Path:
    """The zoo model at 224 px, random weights, exported and fused (the quantization source)."""
    import torch

    from zoodeploy.export import export_artifact
    from zoodeploy.models.train import init_artifact
    from zoodeploy.optimize import OptimizeConfig, optimize
    out = root / name
    torch.manual_seed(0)
    init_artifact(name, out, image_size=SIZE, splits=splits)
    export_artifact(out)
    optimize(out, OptimizeConfig(passes=("fuse",), bench=False, threads=threads))
    return out


def quantize_forms(art: Path, forms: tuple[Form, ...]) -> dict[tuple, Path]:
    """One INT8 file per distinct quantization of `forms`, all from one calibration."""
    from zoodeploy.card import load_card
    from zoodeploy.optimize.quantize import QuantConfig, open_quantizer
    card = load_card(art)
    files: dict[tuple, Path] = {}
    cache = None
    for form in forms:
        if form.quantization in files:
            continue
        q, _ = open_quantizer(art, card, QuantConfig(scheme=form.scheme, per_channel=form.per_channel,
                                                     calib_size=CALIB_SIZE))
        with q:
            if cache is not None:
                shutil.copy(cache, q.cache)  # the same ranges: calibrate once per model
            q.op_types = form.op_types
            out = art / f"int8-{len(files)}.onnx"
            t0 = time.perf_counter()
            q.write(out)
            print(f"  quantized {q.scheme.value}, {'per-channel' if form.per_channel else 'per-tensor'}, "
                  f"{'/'.join(form.op_types) if form.op_types else 'all ops'} in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            if cache is None:
                cache = art / "calibration.json"
                shutil.copy(q.cache, cache)
        files[form.quantization] = out
    return files


def session(path: Path, form: Form | None, threads: int):
    import onnxruntime as ort

    from zoodeploy.runtime import RunOptions
    from zoodeploy.runtime.ort import CPU, session_options
    so = session_options(RunOptions(threads=threads))
    if form is not None:
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, form.level)
        for k, v in form.entries.items():
            so.add_session_config_entry(k, v)
    return ort.InferenceSession(str(path), so, providers=[CPU])


def agreement(sess, ref: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    name = sess.get_inputs()[0].name
    got = np.concatenate([sess.run(None, {name: x[i:i + 64]})[0] for i in range(0, len(x), 64)])
    span = float(ref.max() - ref.min()) or 1.0
    return float((got.argmax(1) == ref.argmax(1)).mean() * 100), float(np.abs(got - ref).max() / span)


def bench_model(name: str, art: Path, batches: tuple[int, ...], threads: int, timing) -> None:
    from zoodeploy.bench.latency import measure_many
    from zoodeploy.card import load_card
    from zoodeploy.evaluate.accuracy import eval_splits
    card = load_card(art)
    x_test = eval_splits(card).test.arrays(card.preprocessing)
    files = quantize_forms(art, FORMS)
    fused = session(art / card.variants["fused"].file, None, threads)
    ref = np.concatenate([fused.run(None, {card.input_name: x_test[i:i + 64]})[0] for i in range(0, len(x_test), 64)])
    sessions = {"fused fp32 (ENABLE_ALL)": fused,
                **{f.label: session(files[f.quantization], f, threads) for f in FORMS}}
    quality = {k: agreement(s, ref, x_test) for k, s in sessions.items()}
    p50: dict[str, dict[int, float]] = {}
    for b in batches:
        x = np.ascontiguousarray(np.resize(x_test, (b, *x_test.shape[1:])))
        calls = {k: (lambda s=s, x=x: s.run(None, {card.input_name: x})) for k, s in sessions.items()}
        for k, st in measure_many(calls, b, timing, False, f"{name} batch {b}").items():
            p50.setdefault(k, {})[b] = st.p50_ms
    base = p50[FORMS[0].label]
    print(f"\n{name} @ {SIZE}px, {threads} threads   " + "".join(f"{'b' + str(b) + ' ms':>9}{'x':>6}" for b in batches)
          + f"{'agree %':>9}{'max err':>9}")
    for k in sessions:
        cells = "".join(f"{p50[k][b]:>9.3f}{base[b] / p50[k][b]:>6.2f}" for b in batches)
        print(f"  {k:<62}{cells}{quality[k][0]:>9.1f}{quality[k][1]:>9.4f}")
    print(f"  (x: speed-up over the first int8 row; agreement: top-1 vs fused fp32 on {len(x_test)} images)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="batch 1 only, shorter timing windows")
    args = ap.parse_args()
    from cpu_runtimes import each_model, timing_for  # the sibling script's loop and timing windows
    from zoodeploy.models.data import load_splits
    from zoodeploy.optimize.isa import scheme_for
    from zoodeploy.target import detect_isa
    import onnxruntime as ort
    batches = (1,) if args.quick else (1, 8)
    timing = timing_for(args.quick)
    isa = detect_isa()
    print(f"CPU: {isa.model} ({isa.summary}); onnxruntime {ort.__version__}; zoodeploy's scheme here: "
          f"{scheme_for(isa)[0]}")
    splits = load_splits("digits")
    each_model(args.models, "zoodeploy-ort-int8-",
               lambda name, root: bench_model(name, fused_artifact(name, root, splits, args.threads),
                                              batches, args.threads, timing))


if __name__ == "__main__":
    main()
