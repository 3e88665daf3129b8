"""Training targets on digits at 32x32, measured on this machine (not a pass/fail test).

    .venv/bin/python benchmarks/train_targets.py [--models lenet5,mobilenet_v2,resnet18 | all]

Targets (issue #2, 2-core machine): lenet5 >= 97% test accuracy in <= 30 s; mobilenet_v2
>= 97% in <= 2 min; resnet18 >= 98%. Uses `zoodeploy train`'s defaults, i.e. what a user gets.
`--models all` trains every zoo architecture with its defaults (an hour or more on 2 cores).
Run it on a quiet machine: other processes on the two cores slow training several-fold.
"""

from __future__ import annotations

import argparse
import tempfile
import time

TARGETS = {"lenet5": (97.0, 30.0), "mobilenet_v2": (97.0, 120.0), "resnet18": (98.0, None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(TARGETS))
    args = ap.parse_args()
    from zoodeploy.models.data import load_splits
    from zoodeploy.models.train import TrainConfig, train
    from zoodeploy.models.zoo import list_models
    splits = load_splits("digits")
    rows = []
    for name in list_models() if args.models == "all" else args.models.split(","):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            card = train(TrainConfig(name), out, splits=splits)
            wall = time.perf_counter() - t0
        acc_target, time_target = TARGETS.get(name, (None, None))
        ok = ((acc_target is None or card.training.test_accuracy >= acc_target)
              and (time_target is None or wall <= time_target))
        tr = card.training
        rows.append((name, tr.epochs, tr.lr, tr.image_size, tr.test_accuracy, wall, acc_target, time_target, ok))
    print(f"\n{'model':<20}{'epochs':>7}{'lr':>8}{'px':>5}{'test acc %':>12}{'wall s':>9}   target")
    for name, ep, lr, px, acc, wall, at, tt, ok in rows:
        target = f">= {at}%" + (f" in <= {tt:.0f}s" if tt else "") if at else "-"
        verdict = ("met" if ok else "MISSED") if at else ""
        print(f"{name:<20}{ep:>7}{lr:>8g}{px:>5}{acc:>12.2f}{wall:>9.1f}   {target:<22} {verdict}")


if __name__ == "__main__":
    main()
