"""Training targets on digits, measured on this machine (not a pass/fail test).

    .venv/bin/python benchmarks/train_targets.py [--models lenet5,mobilenet_v2,resnet18 | all]
        [--epochs fractalnet=20 ...] [--json OUT]

Each model trains with `zoodeploy train NAME --data digits`'s defaults, i.e. what a user gets (its
zoo entry's epochs, peak learning rate and input size), and is held to its target in TARGETS: test
accuracy on digits' held-out split and, for some, a wall time on the 2-core machine.
`--epochs NAME=N` trains that model for N epochs instead of its default (the one-cycle schedule
then spans those N): a measurement on a subset of epochs, which the table and the JSON say.
The deepest entries take their time on one core: ResNet-1202 ~21 min (at 16 px, its digits
default), FractalNet ~39 min, WRN-28-10 ~45 min; Inception-v4's 30 epochs ~15 min on 2 cores.
`--models all` trains every zoo architecture with its defaults (many hours on 2 cores).
Run it on a quiet machine: other processes on the two cores slow training several-fold, so the
wall times of a run beside other work are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    accuracy: float  # test accuracy %, at least
    seconds: float | None = None  # wall time, at most (on the 2-core machine)


TARGETS = {
    # issue #2
    "lenet5": Target(97.0, 30.0), "mobilenet_v2": Target(97.0, 120.0), "resnet18": Target(98.0),
    # issue #19: the architectures from the rest of the seeds' zoo
    "preact_resnet18": Target(97.0), "preact_resnet50": Target(97.0), "preact_resnet164": Target(97.0),
    "resnet110": Target(97.0), "resnet1202": Target(95.0), "wrn28_10": Target(97.0),
    "fractalnet": Target(97.0), "inception_v4": Target(95.0), "inception_resnet_v2": Target(95.0),
    "nasnet_a_mobile": Target(95.0),
}


@dataclass
class Row:
    model: str
    epochs: int
    default_epochs: int  # the zoo entry's; differs from `epochs` under --epochs NAME=N
    lr: float
    image_size: int
    test_accuracy: float
    wall_s: float
    cpu_s: float  # CPU time of all its threads: less sensitive than wall time to other work on the machine
    target_accuracy: float | None
    target_s: float | None
    met: bool | None  # None: no target

    @property
    def subset(self) -> bool:
        return self.epochs != self.default_epochs


def parse_epochs(items: list[str], models: list[str], ap: argparse.ArgumentParser) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            ap.error(f"--epochs takes NAME=N with N >= 1, got {item!r}")
        if name not in models:
            ap.error(f"--epochs {item}: {name} is not among --models")
        out[name] = int(n)
    return out


def measure(name: str, epochs: int | None, splits) -> Row:
    from zoodeploy.models.train import TrainConfig, train
    from zoodeploy.models.zoo import get_spec
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        tr = train(TrainConfig(name, epochs=epochs), out, splits=splits).training
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    target = TARGETS.get(name)
    met = None if target is None else (tr.test_accuracy >= target.accuracy
                                       and (target.seconds is None or wall <= target.seconds))
    return Row(name, tr.epochs, get_spec(name).train_epochs, tr.lr, tr.image_size, tr.test_accuracy,
               round(wall, 1), round(cpu, 1), target and target.accuracy, target and target.seconds, met)


def table(rows: list[Row]) -> str:
    lines = [f"{'model':<20}{'epochs':>7}{'lr':>8}{'px':>5}{'test acc %':>12}{'wall s':>9}{'cpu s':>9}   target"]
    for r in rows:
        target = (f">= {r.target_accuracy}%" + (f" in <= {r.target_s:.0f}s" if r.target_s else "")
                  if r.target_accuracy else "-")
        verdict = {True: "met", False: "MISSED", None: ""}[r.met]
        epochs = f"{r.epochs}/{r.default_epochs}*" if r.subset else str(r.epochs)
        lines.append(f"{r.model:<20}{epochs:>7}{r.lr:>8g}{r.image_size:>5}{r.test_accuracy:>12.2f}"
                     f"{r.wall_s:>9.1f}{r.cpu_s:>9.1f}   {target:<22} {verdict}")
    if any(r.subset for r in rows):
        lines.append("* N/M: trained N epochs (--epochs) instead of the entry's default M, the one-cycle "
                     "schedule spanning the N")
    return "\n".join(lines)


def machine() -> dict:
    import torch
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "nice": os.nice(0), "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lenet5,mobilenet_v2,resnet18", help="comma-separated names, or all")
    ap.add_argument("--epochs", action="append", default=[], metavar="NAME=N",
                    help="train NAME for N epochs instead of its default (repeatable)")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT",
                    help="also write the table here, rewritten after each model")
    args = ap.parse_args()
    from zoodeploy.models.data import load_splits
    from zoodeploy.models.zoo import get_spec, list_models
    models = list_models() if args.models == "all" else [m for m in args.models.split(",") if m]
    for m in models:
        get_spec(m)  # an unknown name fails before any training
    epochs = parse_epochs(args.epochs, models, ap)
    splits = load_splits("digits")
    start, host, rows = time.perf_counter(), machine(), []
    for name in models:
        rows.append(measure(name, epochs.get(name), splits))
        if args.json:
            args.json.write_text(json.dumps({
                **host, "load_avg_1m_end": os.getloadavg()[0], "wall_s": round(time.perf_counter() - start, 1),
                "rows": [{**asdict(r), "subset_of_epochs": r.subset} for r in rows]}, indent=2) + "\n")
    print(f"\n{host['cpu']}, {host['cores']} cores, {host['torch_threads']} torch threads, nice {host['nice']}, "
          f"load {host['load_avg_1m']:.1f} at start; total {time.perf_counter() - start:.0f} s")
    print(table(rows))


if __name__ == "__main__":
    main()
