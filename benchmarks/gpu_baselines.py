"""PyTorch CUDA baselines vs ONNX Runtime CUDA / TensorRT, measured in one run (not a pass/fail test).

    .venv/bin/python benchmarks/gpu_baselines.py [--models resnet18,mobilenet_v2] [--image-size 224]
        [--batches 1,32] [--artifact DIR] [--out benchmarks/out]

Every method is timed the same way, end to end as a service sees it: float32 NCHW numpy on the
host in, logits as numpy on the host out (so host<->GPU copies count), with `zoodeploy.bench`'s
`measure` (warm-up, then windows until the median is stable). Ratios are speed-ups over eager
fp32 CUDA at the same batch, from this one run. Methods: eager fp32, eager fp16 (`.half()`),
autocast fp16, torch.compile (fp32 and fp16); ONNX Runtime's CUDA and TensorRT providers when
onnxruntime-gpu is installed; TensorRT engines (trt-fp32, trt-fp16) when TensorRT is; Torch-
TensorRT when torch_tensorrt and an exported program are. Models are random-init (latency does
not depend on the weights) unless --artifact names a trained one. Exits with one line without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

Run = Callable[[np.ndarray], np.ndarray]


def torch_method(model, dtype=None, autocast: bool = False, compile_mode: str | None = None) -> Run:
    """A run function for a PyTorch baseline: host numpy -> CUDA -> host numpy."""
    import torch
    model = model.to("cuda").eval()
    if dtype is not None:
        model = model.to(dtype)
    if compile_mode is not None:
        model = torch.compile(model, mode=compile_mode)

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).to("cuda")
        t = t.to(dtype) if dtype is not None else t
        ctx = torch.autocast("cuda", dtype=torch.float16) if autocast else contextlib.nullcontext()
        with ctx:
            out = model(t)
        return out.float().cpu().numpy()

    return run


def runner_method(artifact: Path, variant: str, options=None) -> tuple[Run, Callable[[], None]]:
    from zoodeploy.runtime import open_runner
    runner = open_runner(artifact, variant, options)
    return runner.run, runner.close


def make_artifact(name: str, image_size: int, root: Path) -> Path:
    from zoodeploy.export import export_artifact
    from zoodeploy.models.train import init_artifact
    out = root / name
    init_artifact(name, out, image_size=image_size)
    export_artifact(out)
    return out


def build_engines(artifact: Path, max_batch: int, say) -> list[str]:
    """trt-fp32 / trt-fp16 engines (and torch-trt-fp16 when possible); names that were built."""
    from zoodeploy.card import load_card
    from zoodeploy.errors import ZoodeployError
    from zoodeploy.optimize.compile import compile_variant
    from zoodeploy.optimize.tensorrt import CompileConfig
    from zoodeploy.optimize.torch_tensorrt import exported_program_variant
    built = []
    configs = [CompileConfig(precision=p, max_batch=max_batch, opt_batch=max_batch) for p in ("fp32", "fp16")]
    if importlib.util.find_spec("torch_tensorrt") and exported_program_variant(load_card(artifact)):
        configs.append(CompileConfig(backend="torch-tensorrt", precision="fp16", max_batch=max_batch,
                                     opt_batch=max_batch))
    for cfg in configs:
        say(f"compiling {cfg.variant_name} …")
        try:
            built.append(compile_variant(artifact, cfg).name)
        except ZoodeployError as e:
            say(f"{cfg.variant_name}: not measured: {e}")
    return built


def methods(artifact: Path, engines: list[str], say) -> dict[str, tuple[Run, Callable[[], None]]]:
    """Every method this machine can run, by label; each with its close function."""
    import onnxruntime
    import torch

    from zoodeploy.models.artifact import load_model
    from zoodeploy.runtime import EAGER, RunOptions
    from zoodeploy.runtime.ort import CUDA, TENSORRT

    def fresh():
        return load_model(artifact)

    nothing = lambda: None  # noqa: E731
    out = {"eager fp32": runner_method(artifact, EAGER, RunOptions(device="cuda")),
           "eager fp16 (.half)": (torch_method(fresh(), dtype=torch.float16), nothing),
           "autocast fp16": (torch_method(fresh(), autocast=True), nothing),
           "torch.compile fp32": (torch_method(fresh(), compile_mode="max-autotune-no-cudagraphs"), nothing),
           "torch.compile fp16": (torch_method(fresh(), dtype=torch.float16,
                                               compile_mode="max-autotune-no-cudagraphs"), nothing)}
    available = onnxruntime.get_available_providers()
    for provider, ep, extra in (("cuda", CUDA, ()), ("tensorrt", TENSORRT, (TENSORRT,))):
        if ep in available:
            out[f"ORT {provider} fp32"] = runner_method(artifact, "fp32", RunOptions(device="cuda", extra_providers=extra))
        else:
            say(f"ORT {provider}: not measured ({ep} needs onnxruntime-gpu)")
    for name in engines:
        out[name] = runner_method(artifact, name)
    return out


def bench_model(artifact: Path, batches: list[int], say) -> list[dict]:
    from zoodeploy.bench.latency import BenchConfig, measure
    from zoodeploy.card import load_card
    cfg = BenchConfig(warmup=20, window=20, min_runs=60, max_runs=2000, max_seconds=15.0)
    card = load_card(artifact)
    engines = build_engines(artifact, max(batches), say) if importlib.util.find_spec("tensorrt") else []
    if not engines:
        say("TensorRT engines: not measured (install the gpu extra: pip install 'zoodeploy[gpu]')")
    rows = []
    x_all = np.random.default_rng(0).standard_normal((max(batches), 3, card.input_size, card.input_size))
    for label, (run, close) in methods(artifact, engines, say).items():
        try:
            for b in batches:
                say(f"{card.name} {label} batch {b} …")
                s = measure(run, x_all[:b].astype(np.float32), cfg, label=label, progress=True)
                rows.append({"model": card.name, "method": label, "batch": b, "p50_ms": s.p50_ms,
                             "p90_ms": s.p90_ms, "throughput": s.throughput, "stable": s.settings.stable})
        finally:
            close()
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["batch"] == r["batch"]
                    and b["method"] == "eager fp32")
        r["speedup_vs_eager_fp32"] = base["p50_ms"] / r["p50_ms"]
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"\n{'model':<14}{'method':<22}{'batch':>6}{'p50 ms':>10}{'p90 ms':>10}{'img/s':>10}{'x eager':>9}")
    for r in rows:
        print(f"{r['model']:<14}{r['method']:<22}{r['batch']:>6}{r['p50_ms']:>10.3f}{r['p90_ms']:>10.3f}"
              f"{r['throughput']:>10.0f}{r['speedup_vs_eager_fp32']:>9.2f}" + ("" if r["stable"] else "  (unstable)"))


def plot(rows: list[dict], path: Path, device: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = sorted({(r["model"], r["batch"]) for r in rows})
    labels = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) * len(labels) / 4), 4.5))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        ys = [next((r["speedup_vs_eager_fp32"] for r in rows if (r["model"], r["batch"]) == g
                    and r["method"] == label), 0.0) for g in groups]
        ax.bar(np.arange(len(groups)) + i * width, ys, width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, [f"{m}\nbatch {b}" for m, b in groups])
    ax.set_ylabel("speed-up over eager fp32 CUDA (p50)")
    ax.set_title(f"GPU baselines on {device}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--artifact", type=Path, help="Measure this (trained) artifact instead of --models.")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    from zoodeploy.errors import ZoodeployError
    from zoodeploy.runtime.gpu import require_cuda
    try:
        require_cuda()
    except ZoodeployError as e:
        print(f"gpu_baselines: {e}", file=sys.stderr)
        return 1
    import torch
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="zoodeploy-gpu-bench-") as tmp:
        if args.artifact:
            import shutil  # engines are added to a copy, never to the user's artifact
            shutil.copytree(args.artifact, Path(tmp) / "artifact")
            arts = [Path(tmp) / "artifact"]
        else:
            arts = [make_artifact(m, args.image_size, Path(tmp)) for m in args.models.split(",")]
        for art in arts:
            rows += bench_model(art, batches, say)
    device = torch.cuda.get_device_name()
    print(f"GPU: {device}; torch {torch.__version__}; timings: host numpy in -> host numpy out, p50 over stable windows")
    print_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_baselines.json").write_text(json.dumps({"device": device, "rows": rows}, indent=2) + "\n")
    plot(rows, args.out / "gpu_baselines.png", device)
    print(f"\nwrote {args.out / 'gpu_baselines.json'} and {args.out / 'gpu_baselines.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
