"""INT8 top-1 drift on x86 and on an emulated ARM64 device, per quantization scheme (not a pass/fail test).

    .venv/bin/python benchmarks/arm64_drift.py [--models mobilenet_v2,squeezenet1_1,mobilenet_v3_small]
        [--epochs N] [--work DIR] [--json FILE]

For each model: train on digits with its default recipe (or reuse DIR/<model>), export, then
quantize twice from the same fp32 model without accuracy control: `int8-host` with the scheme
this build host would pick for itself (optimize/isa.py: u8s8-reduce-range on AVX2 without
VNNI), and `int8-arm` with `--target-isa arm64` (S8S8, full-range, per-channel weights). Both
are evaluated on the held-out digits test split (359 images) twice: here, with x86 kernels, and
inside the emulated ARM64 device (zoodeploy.device: Debian arm64 root under qemu-user), through
each variant's edge bundle (`predict.py`), against fp32 run on the same device.

Prints one table: drift in top-1 points (fp32 - int8, positive = lost) and agreement with fp32.
Needs root, apt-get and qemu-user-static + binfmt-support for the ARM64 columns; without
them those columns are absent (the reason is printed), never guessed. No timings: emulated
time means nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

VARIANTS = {"int8-host": "host", "int8-arm": "arm64"}  # variant -> --target-isa


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def prepare(model: str, work: Path, epochs: int | None) -> Path:
    """A trained, exported artifact with both int8 variants (reused when already there)."""
    from zoodeploy.card import load_card
    from zoodeploy.export import export_artifact
    from zoodeploy.models.train import TrainConfig, train
    from zoodeploy.optimize.quantize import QuantConfig, quantize
    out = work / model
    if not (out / "card.json").exists():
        log(f"{model}: training on digits")
        tmp = work / f"{model}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        train(TrainConfig(model, epochs=epochs), tmp)
        export_artifact(tmp)
        tmp.rename(out)
    card = load_card(out)
    for name, target in VARIANTS.items():
        if name not in card.variants:
            log(f"{model}: quantizing {name} (--target-isa {target})")
            quantize(out, QuantConfig(target_isa=target), variant_name=name)
    return out


def measure(artifact: Path) -> dict:
    from zoodeploy.card import load_card
    from zoodeploy.device.evaluate import evaluate_on
    from zoodeploy.errors import ZoodeployError
    from zoodeploy.evaluate.accuracy import evaluate_variants
    names = ["fp32", *VARIANTS]
    x86 = evaluate_variants(artifact, names)
    try:
        arm = evaluate_on(artifact, "arm64", names, say=log)
        arm_error = None
    except ZoodeployError as e:
        arm, arm_error = {}, str(e)
    card = load_card(artifact)
    return {"n": x86["fp32"].n, "fp32_x86": x86["fp32"].top1, "fp32_arm64": arm["fp32"].top1 if arm else None,
            "schemes": {n: card.variants[n].recipe.scheme for n in VARIANTS},
            "x86": {n: (x86[n].drop_pt, x86[n].agreement) for n in VARIANTS},
            "arm64": {n: (arm[n].drop_pt, arm[n].agreement) for n in VARIANTS} if arm else None,
            "arm64_error": arm_error}


def table(results: dict) -> str:
    head = ("model", "n", "fp32 x86 / arm64 %", "x86, host scheme", "x86, ARM scheme", "ARM64, ARM scheme")
    rows = [head]
    for model, r in results.items():
        def cell(where, name):
            if r[where] is None:
                return "absent"
            drop, agree = r[where][name]
            return f"{drop:+.2f} pt ({agree:.1f}% agree)"
        fp32 = f"{r['fp32_x86']:.2f} / " + (f"{r['fp32_arm64']:.2f}" if r["fp32_arm64"] is not None else "-")
        rows.append((model, str(r["n"]), fp32, f"{cell('x86', 'int8-host')} [{r['schemes']['int8-host']}]",
                     f"{cell('x86', 'int8-arm')} [{r['schemes']['int8-arm']}]", cell("arm64", "int8-arm")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mobilenet_v2,squeezenet1_1,mobilenet_v3_small")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: each model's own)")
    ap.add_argument("--work", type=Path, default=None, help="artifact folder, kept and reused (default: a temp one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="arm64-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {m: measure(prepare(m, work, args.epochs)) for m in args.models.split(",") if m}
    print("int8 top-1 drift vs fp32 on the digits test split (drop in points, + = lost); "
          "ARM64 = emulated device, fp32 reference run there too")
    print(table(results))
    for model, r in results.items():
        if r["arm64_error"]:
            print(f"{model}: ARM64 figures absent: {r['arm64_error']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
