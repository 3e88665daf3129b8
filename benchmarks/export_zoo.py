"""Export time and fidelity across the zoo, measured in one run (not a pass/fail test).

    .venv/bin/python benchmarks/export_zoo.py [--models resnet18,mobilenet_v2] [--image-size N]
        [--compare-inplace] [--out benchmarks/out]

Per model, the zoo sweep's setup (random init, digits validation images at max(32, the
architecture's minimum) px, dynamic batch): seconds of each export step (torch.export capture,
torch.onnx translation, checker, validation) and the validation figures vs PyTorch at batch 1
and 8 (max abs / relative error, logit scale), which the default fp32 tolerance is chosen from.
With --compare-inplace each model is also exported with its in-place activations left as built
(what `out_of_place` avoids), alternating A/B per model, and the speed-up is printed.

Writes OUT/export_zoo.json and OUT/export_zoo.png (time per step, error vs logit scale).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path


def export_once(name: str, size: int, splits, inplace_as_built: bool = False) -> dict:
    """One export into a fresh artifact; its step seconds, CPU seconds and validation figures."""
    import torch

    from zoodeploy.export import export_artifact
    from zoodeploy.export import program
    from zoodeploy.models.train import init_artifact
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        init_artifact(name, tmp, image_size=size, splits=splits)
        saved = program.out_of_place
        if inplace_as_built:
            program.out_of_place = lambda model: contextlib.nullcontext()
        try:
            cpu = time.process_time()
            v = export_artifact(tmp)
            cpu = time.process_time() - cpu
        finally:
            program.out_of_place = saved
    comps = [c.model_dump() for c in v.validation.comparisons]
    return {"seconds": v.seconds, "cpu_seconds": round(cpu, 2), "nodes": v.graph.nodes,
            "max_abs_err": max(c["max_abs_err"] for c in comps), "max_rel_err": max(c["max_rel_err"] for c in comps),
            "logit_scale": max(c["logit_scale"] for c in comps)}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 6))
    names = [r["name"] for r in rows]
    bottom = [0.0] * len(rows)
    for step in rows[0]["seconds"]:
        vals = [r["seconds"].get(step, 0.0) for r in rows]
        ax1.barh(names, vals, left=bottom, label=step)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_xlabel("seconds (wall)")
    ax1.set_title("export time per step")
    ax1.legend()
    ax2.scatter([r["logit_scale"] for r in rows], [r["max_abs_err"] for r in rows], label="max abs error")
    ax2.scatter([r["logit_scale"] for r in rows], [r["max_rel_err"] for r in rows], label="max relative error")
    for r in rows:
        ax2.annotate(r["name"], (r["logit_scale"], r["max_abs_err"]), fontsize=7)
    ax2.axhline(1e-4, color="grey", linestyle="--", label="default atol = rtol = 1e-4")
    ax2.set(xscale="log", yscale="log", xlabel="largest |logit|", title="ONNX Runtime vs PyTorch (fp32)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    from zoodeploy.models.data import load_splits
    from zoodeploy.models.zoo import get_spec, list_models
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated zoo names (default: all)")
    ap.add_argument("--image-size", type=int, default=None, help="default: max(32, min input size)")
    ap.add_argument("--compare-inplace", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    names = args.models.split(",") if args.models else list_models()
    splits = load_splits("digits")
    export_once("lenet5", 32, splits)  # warm-up: imports and first-call costs out of the figures
    rows = []
    for name in names:
        size = args.image_size or max(32, get_spec(name).min_input_size)
        row = {"name": name, "size": size, **export_once(name, size, splits)}
        if args.compare_inplace:
            row["as_built"] = export_once(name, size, splits, inplace_as_built=True)
            row["inplace_speedup"] = round(row["as_built"]["cpu_seconds"] / row["cpu_seconds"], 2)
        rows.append(row)
        s = row["seconds"]
        print(f"{name:20s} {size:4d}px  capture {s['torch.export']:6.2f}s  translate {s['torch.onnx']:6.2f}s  "
              f"validate {s['validate']:5.2f}s  cpu {row['cpu_seconds']:6.2f}s  nodes {row['nodes']:4d}  "
              f"abs err {row['max_abs_err']:.2e}  rel err {row['max_rel_err']:.2e}  |logit| {row['logit_scale']:.2e}"
              + (f"  as built cpu {row['as_built']['cpu_seconds']:6.2f}s (x{row['inplace_speedup']})"
                 if args.compare_inplace else ""), flush=True)
    total = sum(r["cpu_seconds"] for r in rows)
    print(f"total export CPU seconds: {total:.1f} for {len(rows)} models; worst abs err "
          f"{max(r['max_abs_err'] for r in rows):.2e}, worst rel err {max(r['max_rel_err'] for r in rows):.2e}")
    if args.compare_inplace:
        built = sum(r["as_built"]["cpu_seconds"] for r in rows)
        print(f"in-place activations as built: {built:.1f} CPU s; out of place: {total:.1f} CPU s "
              f"(x{built / total:.2f})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export_zoo.json").write_text(json.dumps(rows, indent=1))
    plot(rows, args.out / "export_zoo.png")
    print(f"wrote {args.out / 'export_zoo.json'} and {args.out / 'export_zoo.png'}")


if __name__ == "__main__":
    main()
