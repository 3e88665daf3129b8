"""INT8 top-1 drift vs fp32 on 10,000 held-out Fashion-MNIST images, with a paired 95% interval (not a pass/fail test).

    nice -n 19 .venv/bin/python benchmarks/fashion_drift.py [--models lenet5,mobilenet_v2,squeezenet1_1,resnet18]
        [--train-images 5000] [--epochs N] [--threads N] [--work DIR] [--json FILE]

Why: on digits' 359 test images one image is 0.28 pt, so a 0.5-pt drift budget is decided by one
or two images. Here the drift is measured on Fashion-MNIST's whole test set (10,000 images, none
seen in training or calibration), where one image is 0.01 pt.

Data: Debian's `dataset-fashion-mnist` (IDX files under /usr/share/datasets/fashion-mnist),
installed with apt-get when missing (needs root). The images are written once, as 28x28 PNGs,
into ImageFolder trees under WORK/data (class folders named after Fashion-MNIST's 10 classes):
`train-<N>` (N training images, N/10 per class, a seeded draw from the 60,000) and `test` (all
10,000 test images), so the models go through the path a user with a folder of images takes.

Per model (the regression suite's: tests/evaluate/test_regression.py), as that suite does it:
`zoodeploy train` on `train-<N>` (its own deterministic split: 65% train, 15% val for the best
epoch, 20% test) at the digits input size (32 px, 48 for SqueezeNet) for a few epochs (a few
minutes each on 2 cores), export, then the real `optimize()` with fuse + int8 (calibrated on
the train split, the scheme picked for this CPU, no accuracy control: the raw drift of the
scheme), reused from WORK when already there. Then fp32 and int8 are run on every image of
`test` (an evaluation-only split: val 0, test 1.0; classes matched to the card's labels by name).

Printed per model: fp32 and int8 top-1 (argmax: the first of equal logits, as /classify
answers), the drop in points (+ = int8 lost), its paired 95% confidence interval, top-1
agreement, the discordant images (right in fp32 only / int8 only), how many images have a tied
top int8 logit, n, and the scheme. The interval is Newcombe's (1998) square-and-add interval for a difference of
paired proportions (his method 10: Wilson score limits of each top-1, combined with the
correlation of the paired outcomes), computed from the 2x2 table of per-image right/wrong.
No timings are reported. On a busy machine pass `--threads 1`: two intra-op threads that each
get a fraction of a core wait on each other, and training slows down many times over.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PACKAGE = "dataset-fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# Fashion-MNIST's classes in label order ("T-shirt/top" has a slash: not a folder name)
CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
MODELS = ("lenet5", "mobilenet_v2", "squeezenet1_1", "resnet18")  # tests/evaluate/test_regression.py
# epochs that keep each one to a few minutes on 2 cores with the default 5,000 images (3,250 trained on)
EPOCHS = {"lenet5": 10, "mobilenet_v2": 4, "squeezenet1_1": 8, "resnet18": 3}
DEFAULT_EPOCHS = 4
Z95 = 1.959963984540054


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ---- the data: Debian's package, as ImageFolder trees of PNGs ---------------------------------


def package_files() -> dict[str, Path]:
    """The package's four IDX files by name, installing it with apt-get when they are missing."""
    found = _listed_files()
    if len(found) < 4:
        _install()
        found = _listed_files()
    missing = [name for pair in FILES.values() for name in pair if name not in found]
    if missing:
        raise SystemExit(f"{PACKAGE} is installed but lacks {', '.join(missing)} (dpkg -L {PACKAGE})")
    return found


def _listed_files() -> dict[str, Path]:
    r = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True)
    paths = [Path(line) for line in r.stdout.splitlines()] if r.returncode == 0 else []
    wanted = {name for pair in FILES.values() for name in pair}
    return {p.name: p for p in paths if p.name in wanted and p.is_file()}


def _install() -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"{PACKAGE} is not installed; install it (sudo apt-get install {PACKAGE}) or run as root")
    log(f"installing {PACKAGE} with apt-get (about 31 MB)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE]
    if subprocess.run(install, env=env).returncode != 0:  # a stale package list: update once, retry
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped, unsigned bytes) as an array of its shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> Path:
    """images[indices] as ROOT/<class>/<index>.png, written once (kept when ROOT exists)."""
    if root.exists():
        return root
    from PIL import Image
    from tqdm.auto import tqdm
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in CLASSES:
        (tmp / name).mkdir(parents=True)
    for i in tqdm(indices, desc=f"writing {root.name}", unit="img", leave=False):
        Image.fromarray(images[i], "L").save(tmp / CLASSES[labels[i]] / f"{i:05d}.png")
    tmp.rename(root)
    return root


def prepare_data(work: Path, train_images: int, seed: int = 0) -> tuple[Path, Path]:
    """(train folder of `train_images` images, N/10 per class; test folder of all 10,000)."""
    data = work / "data"
    train_dir, test_dir = data / f"train-{train_images}", data / "test"
    if train_dir.exists() and test_dir.exists():
        return train_dir, test_dir
    files = package_files()
    data.mkdir(parents=True, exist_ok=True)
    x, y = (read_idx(files[name]) for name in FILES["train"])
    rng = np.random.default_rng(seed)
    per_class = train_images // len(CLASSES)
    subset = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == k))[:per_class]
                                     for k in range(len(CLASSES))]))
    log(f"data: {len(subset)} of {len(y)} training images -> {train_dir}")
    write_folder(train_dir, x, y, subset)
    x, y = (read_idx(files[name]) for name in FILES["test"])
    log(f"data: all {len(y)} test images -> {test_dir}")
    write_folder(test_dir, x, y, np.arange(len(y)))
    return train_dir, test_dir


# ---- the statistics ---------------------------------------------------------------------------


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def paired_difference_ci(both: int, first_only: int, second_only: int, neither: int,
                         z: float = Z95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval for p1 - p2 of paired right/wrong outcomes.

    p1 = (both + first_only) / n, p2 = (both + second_only) / n; the Wilson limits of each are
    combined with phi, the correlation of the pairs (continuity-corrected as Newcombe does).
    """
    n = both + first_only + second_only + neither
    r1, r2 = both + first_only, both + second_only
    p1, p2 = r1 / n, r2 / n
    l1, u1 = wilson(r1, n, z)
    l2, u2 = wilson(r2, n, z)
    margins = r1 * (n - r1) * r2 * (n - r2)
    cross = both * neither - first_only * second_only
    phi = 0.0
    if margins > 0:
        phi = (cross - n / 2 if cross > n / 2 else min(cross, 0)) / math.sqrt(margins)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2))
    upper = d + math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1))
    return lower, upper


# ---- the product pipeline ---------------------------------------------------------------------


def prepare_model(model: str, work: Path, train_dir: Path, epochs: int, threads: int | None) -> Path:
    """A model trained on `train_dir`, exported, fused and quantized (reused when already there)."""
    from zoodeploy.card import load_card
    from zoodeploy.export import export_artifact
    from zoodeploy.models.train import TrainConfig, train
    from zoodeploy.models.zoo import get_spec
    from zoodeploy.optimize import OptimizeConfig, optimize
    out = work / "models" / f"{model}-{train_dir.name}-{epochs}ep"
    if (out / "card.json").exists() and "int8" in load_card(out).variants:
        log(f"{model}: reusing {out}")
        return out
    spec = get_spec(model)
    size = max(spec.train_input_size, spec.min_input_size)  # the digits size the regression suite uses
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"{model}: training {epochs} epochs at {size}px on {train_dir}")
    start = time.perf_counter()
    card = train(TrainConfig(model, data=str(train_dir), image_size=size, epochs=epochs), tmp)
    log(f"{model}: trained in {time.perf_counter() - start:.0f}s, PyTorch test accuracy on its own split "
        f"{card.training.test_accuracy:.2f}%; exporting")
    export_artifact(tmp)
    log(f"{model}: fuse + int8 (no accuracy control)")
    optimize(tmp, OptimizeConfig(passes=("fuse", "int8"), max_drop=None, bench=False, threads=threads))
    tmp.rename(out)
    return out


@dataclass
class Drift:
    n: int
    image_size: int
    train_images: int
    epochs: int
    fp32_top1: float
    int8_top1: float
    drop_pt: float
    ci95_pt: tuple[float, float]
    agreement: float
    fp32_only: int  # right in fp32, wrong in int8
    int8_only: int  # wrong in fp32, right in int8
    int8_tied: int  # images whose top int8 logit is shared by two or more classes
    evaluate_drop_pt: float  # the drop `zoodeploy evaluate` reports (its top-1 breaks ties its own way)
    scheme: str
    target_isa: str


def measure(artifact: Path, test_dir: Path, threads: int | None) -> Drift:
    """fp32 and int8 on every image of `test_dir`, through the evaluate path's runners."""
    from zoodeploy.card import load_card
    from zoodeploy.evaluate.accuracy import accuracy_of, variant_logits
    from zoodeploy.models.data import load_splits
    from zoodeploy.target import resolve_target
    from zoodeploy.runtime import RunOptions
    card = load_card(artifact)
    splits = load_splits(test_dir, val_fraction=0.0, test_fraction=1.0, labels=card.labels)  # evaluation only
    x, y = splits.test.arrays(card.preprocessing), splits.test.labels
    log(f"{card.name}: fp32 and int8 on {len(y)} held-out images")
    fp32, int8 = (variant_logits(artifact, name, x, RunOptions(threads=threads)) for name in ("fp32", "int8"))
    acc = accuracy_of(int8, y, fp32)
    # top-1 as argmax: the first class among equal logits, as /classify answers (int8 logits tie)
    right32, right8 = fp32.argmax(1) == y, int8.argmax(1) == y
    cells = [int(np.sum(a & b)) for a, b in ((right32, right8), (right32, ~right8), (~right32, right8),
                                            (~right32, ~right8))]
    lo, hi = paired_difference_ci(*cells)
    recipe = card.variants["int8"].recipe
    n = len(y)
    return Drift(n=n, image_size=card.input_size, train_images=card.data.counts["train"],
                 epochs=card.training.epochs, fp32_top1=100 * (cells[0] + cells[1]) / n,
                 int8_top1=100 * (cells[0] + cells[2]) / n, drop_pt=100 * (cells[1] - cells[2]) / n,
                 ci95_pt=(lo * 100, hi * 100), agreement=acc.agreement, fp32_only=cells[1], int8_only=cells[2],
                 int8_tied=int(np.sum((int8 == int8.max(1, keepdims=True)).sum(1) > 1)),
                 evaluate_drop_pt=acc.drop_pt, scheme=recipe.scheme,
                 target_isa=recipe.target_isa or resolve_target("host").value)


def table(results: dict[str, Drift]) -> str:
    head = ("model", "px", "trained on", "n", "fp32 top-1 %", "int8 top-1 %", "drop pt", "95% CI pt",
            "agree %", "fp32-only / int8-only", "int8 ties", "scheme")
    rows = [head] + [(m, str(r.image_size), f"{r.train_images} x {r.epochs} ep", str(r.n), f"{r.fp32_top1:.2f}",
                      f"{r.int8_top1:.2f}", f"{r.drop_pt:+.2f}", f"[{r.ci95_pt[0]:+.2f}, {r.ci95_pt[1]:+.2f}]",
                      f"{r.agreement:.2f}", f"{r.fp32_only} / {r.int8_only}", str(r.int8_tied), r.scheme)
                     for m, r in results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--train-images", type=int, default=5000,
                    help="training images written for training, N/10 per class (zoodeploy trains on 65%%)")
    ap.add_argument("--epochs", type=int, default=None, help=f"training epochs (default: {EPOCHS})")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads, training and ONNX Runtime "
                    "(default: all cores)")
    ap.add_argument("--work", type=Path, default=None, help="data and artifacts, kept and reused (default: a temp one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    if not 100 <= args.train_images <= 60000:
        ap.error("--train-images must be between 100 and 60000")
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be at least 1")
    from zoodeploy.models.zoo import get_spec
    from zoodeploy.target import detect_isa, resolve_target
    models = [m for m in args.models.split(",") if m]
    if not models:
        ap.error("--models names no model")
    for m in models:
        get_spec(m)  # an unknown name fails before any work
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="fashion-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    train_dir, test_dir = prepare_data(work, args.train_images)
    results = {}
    for m in models:
        epochs = args.epochs or EPOCHS.get(m, DEFAULT_EPOCHS)
        results[m] = measure(prepare_model(m, work, train_dir, epochs, args.threads), test_dir, args.threads)
    wall = time.perf_counter() - start
    isa, n = detect_isa(), next(iter(results.values())).n
    print(f"int8 top-1 drift vs fp32 on Fashion-MNIST's {n} test images (held out from training and "
          f"calibration; 1 image = {100 / n:.2f} pt; drop + = int8 lost)")
    print(f"CPU: {isa.model or platform.processor()} ({isa.summary}; "
          f"int8 quantized for {resolve_target('host').value})")
    print(table(results))
    print("95% CI: Newcombe's square-and-add interval for paired proportions (method 10), per-image right/wrong "
          f"of fp32 vs int8; wall time {wall / 60:.1f} min")
    print("top-1 = argmax (the first of equal logits, as /classify answers); int8 ties = images whose top int8 "
          "logit is shared. `zoodeploy evaluate` breaks ties its own way: its drop is "
          + ", ".join(f"{m} {r.evaluate_drop_pt:+.2f}" for m, r in results.items()) + " pt")
    if args.json:
        args.json.write_text(json.dumps({"cpu": isa.to_dict(), "isa_class": resolve_target("host").value,
                                         "ci_method": "Newcombe 1998 method 10 (paired, Wilson score)",
                                         "wall_s": round(wall, 1), "work": str(work),
                                         "models": {m: asdict(r) for m, r in results.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
