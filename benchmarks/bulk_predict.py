"""Bulk inference throughput and memory, measured in one run (not a pass/fail test).

    .venv/bin/python benchmarks/bulk_predict.py [--images 2000] [--small-images 2000,20000]
        [--sizes 224,32] [--batch 32] [--rounds 3] [--arch-224 mobilenet_v2] [--arch-small lenet5]
        [--no-ray] [--memory 2000,20000] [--work DIR]

Generated images (JPEG at 224 px, PNG at the digits size, 32 px) are predicted with an
untrained zoo model exported to ONNX (throughput does not depend on the weights), fp32 variant:

* local engine, end to end (`predict()`: expanding the folder, decoding and preprocessing on
  the thread pool, the model, writing Parquet) against the same variant's offline batched
  throughput with decoding included: one loop of decode + preprocess + run, same batch, same
  preprocessing code. Target: local >= 80% of offline.
  At the small size (32 px) a run of 2,000 images lasts under a second, so the fixed costs of
  a run (opening the model, Ray's actors importing zoodeploy and opening their sessions,
  writing the file) weigh as much as the images; it is measured on 20,000 images too, where
  they no longer do, as on the million images of a real job.
* Ray engine (a local Ray instance with as many CPUs as this machine, one single-threaded actor
  per CPU) against the local engine. Ray's start-up is timed apart and left out of the ratio;
  the ratio with it is printed too. Target: ray >= 50% of local. Beside it, the same Ray Data
  pipeline (rows, blocks, batch size, actor pool, Parquet sink) with a no-op actor: what Ray
  Data costs a run before any image is read, and so the most ray can reach against local there.
* peak memory (ru_maxrss of a fresh subprocess running the local engine) for 2,000 and 20,000
  images at the small size. Target: flat (the larger run within 10% of the smaller).

Each throughput is the median of `--rounds` rounds, the engines interleaved within a round.
Run it when the machine is quiet: other processes on the cores distort every ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LOCAL_TARGET, RAY_TARGET, MEMORY_TARGET = 0.80, 0.50, 1.10


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def make_artifact(arch: str, size: int, root: Path) -> Path:
    """An untrained `arch` at `size` px with digits' labels, exported (fp32)."""
    import torch

    from zoodeploy.export import export_artifact
    from zoodeploy.models.data import load_splits
    from zoodeploy.models.train import init_artifact
    out = root / f"{arch}-{size}px"
    if not (out / "fp32.onnx").exists():
        torch.manual_seed(0)
        init_artifact(arch, out, image_size=size, splits=load_splits("digits"))
        export_artifact(out)
    return out


def make_images(folder: Path, n: int, size: int) -> Path:
    """`n` smooth random images, JPEG for photo sizes (a little larger than the input), PNG for small ones."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.iterdir()))
    rng = np.random.default_rng(size)
    side, ext = (size + size // 7, "jpg") if size >= 64 else (size, "png")
    for i in range(have, n):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((side, side), Image.BICUBIC)
        img.save(folder / f"{i:06d}.{ext}", quality=90) if ext == "jpg" else img.save(folder / f"{i:06d}.{ext}")
    return folder


def offline(artifact: Path, paths: list[str], batch: int) -> float:
    """Images/s of decode + preprocess + run in one loop, `batch` images at a time."""
    from zoodeploy.artifact import Artifact
    from zoodeploy.predict.batch import decode_batch
    from zoodeploy.runtime import RunOptions, open_runner
    art = Artifact(artifact)
    card = art.card
    runner = open_runner(art, "fp32", RunOptions())
    runner.run(decode_batch(paths[:batch], card.preprocessing).x)  # warm-up
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        runner.run(decode_batch(paths[i:i + batch], card.preprocessing).x)
    seconds = time.perf_counter() - start
    runner.close()
    return len(paths) / seconds


def engine(artifact: Path, folder: Path, out: Path, batch: int, **kw) -> float:
    from zoodeploy.predict import PredictConfig, predict
    s = predict(artifact, [folder], PredictConfig(out=out, variant="fp32", batch=batch, **kw))
    assert s.errors == 0, s
    return s.rows / s.seconds


class NoOp:
    """A Ray actor that loads nothing and returns its batch: what Ray Data itself costs."""

    def __call__(self, batch: dict) -> dict:
        return batch


def ray_noop_seconds(n: int, batch: int, actors: int) -> float:
    """Seconds of the Ray engine's pipeline (same rows, blocks, batch size, actor pool and Parquet
    sink) with a no-op actor: a floor under any ray run over `n` inputs on this machine."""
    import ray

    from zoodeploy.predict.ray_engine import CALL_BATCHES
    out = tempfile.mkdtemp(prefix="ray-noop-")
    start = time.perf_counter()
    ds = ray.data.from_items([{"i": i, "path": f"{i:06d}.png"} for i in range(n)],
                             override_num_blocks=max(1, min(n // batch, 4 * actors)))
    ds.map_batches(NoOp, batch_size=batch * CALL_BATCHES, batch_format="numpy",
                   compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1).write_parquet(out)
    return time.perf_counter() - start


def peak_rss_mb(artifact: Path, folder: Path, out: Path, batch: int) -> float:
    """Peak RSS of a fresh process that predicts every image in `folder` with the local engine."""
    code = ("import resource, sys; from zoodeploy.predict import PredictConfig, predict; "
            "predict(sys.argv[1], [sys.argv[2]], PredictConfig(out=sys.argv[3], variant='fp32', batch=int(sys.argv[4]))); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    r = subprocess.run([sys.executable, "-c", code, str(artifact), str(folder), str(out), str(batch)],
                       capture_output=True, text=True, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000, help="images at the photo size (224 px)")
    ap.add_argument("--small-images", default="2000,20000", help="image counts at the small size")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per row; each figure is their median")
    ap.add_argument("--sizes", default="224,32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--arch-224", default="mobilenet_v2")
    ap.add_argument("--arch-small", default="lenet5")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--memory", default="2000,20000", help="image counts for the memory check ('' to skip)")
    ap.add_argument("--work", type=Path, default=None, help="keep artifacts and images here between runs")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bulk-predict-"))
    cpus = os.cpu_count() or 1
    record: dict = {"cpus": cpus, "load_before": os.getloadavg(), "batch": args.batch, "sizes": {}}
    if not args.no_ray:
        import ray
        start = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        record["ray_startup_s"] = time.perf_counter() - start
    from zoodeploy.predict import expand_inputs
    for size in [int(s) for s in args.sizes.split(",") if s]:
        arch = args.arch_224 if size >= 64 else args.arch_small
        art = make_artifact(arch, size, work)
        counts = [args.images] if size >= 64 else [int(c) for c in args.small_images.split(",") if c]
        for n in counts:
            folder = make_images(work / f"images-{size}px-{n}", n, size)
            paths = expand_inputs([folder])
            log(f"{arch} at {size}px, {len(paths)} images, {args.rounds} rounds: offline, local, ray ...")
            rounds = []
            for _ in range(args.rounds):
                one = {"offline": offline(art, paths, args.batch),
                       "local": engine(art, folder, work / "local.parquet", args.batch)}
                if not args.no_ray:
                    one["ray"] = engine(art, folder, work / "ray.parquet", args.batch, engine="ray", workers=cpus)
                    one["ray_noop_s"] = ray_noop_seconds(len(paths), args.batch, cpus)
                rounds.append(one)
            row = {"arch": arch, "size": size, "images": len(paths), "rounds": rounds,
                   **{k: float(np.median([r[k] for r in rounds])) for k in rounds[0]}}
            if not args.no_ray:
                row["ray_with_startup"] = len(paths) / (len(paths) / row["ray"] + record["ray_startup_s"])
            record["sizes"][f"{size}px-{len(paths)}"] = row
    if args.memory:
        counts = [int(c) for c in args.memory.split(",")]
        art = make_artifact(args.arch_small, 32, work)
        record["peak_rss_mb"] = {n: peak_rss_mb(art, make_images(work / f"images-32px-{n}", n, 32),
                                                work / "mem.parquet", args.batch) for n in counts}
    record["load_after"] = os.getloadavg()
    (work / "bulk_predict.json").write_text(json.dumps(record, indent=2) + "\n")
    report(record)


def report(r: dict) -> None:
    print(f"bulk predict on {r['cpus']} cores, batch {r['batch']} (load average before {r['load_before'][0]:.1f}, "
          f"after {r['load_after'][0]:.1f})")
    for row in r["sizes"].values():
        ratio = row["local"] / row["offline"]
        print(f"  {row['arch']} {row['size']}px, {row['images']} images: offline {row['offline']:.0f} img/s, local "
              f"{row['local']:.0f} img/s = {ratio:.0%} of offline (target >= {LOCAL_TARGET:.0%}) "
              f"{'ok' if ratio >= LOCAL_TARGET else 'MISSED'}")
        if "ray" in row:
            ratio = row["ray"] / row["local"]
            print(f"    ray {row['ray']:.0f} img/s = {ratio:.0%} of local (target >= {RAY_TARGET:.0%}) "
                  f"{'ok' if ratio >= RAY_TARGET else 'MISSED'}; with Ray's {r['ray_startup_s']:.1f} s start-up "
                  f"{row['ray_with_startup'] / row['local']:.0%}")
            local_s = row["images"] / row["local"]
            print(f"    Ray Data alone (a no-op actor, same pipeline) {row['ray_noop_s']:.2f} s a run against "
                  f"local's whole run {local_s:.2f} s: ray cannot pass {local_s / row['ray_noop_s']:.0%} of local here")
    for line in split_fixed_costs(list(r["sizes"].values())):
        print(line)
    if "peak_rss_mb" in r:
        (n0, m0), (n1, m1) = list(r["peak_rss_mb"].items())[0], list(r["peak_rss_mb"].items())[-1]
        print(f"  peak RSS: {n0} images {m0:.0f} MB, {n1} images {m1:.0f} MB = {m1 / m0:.2f}x "
              f"(target <= {MEMORY_TARGET:.2f}x) {'ok' if m1 / m0 <= MEMORY_TARGET else 'MISSED'}")


def split_fixed_costs(rows: list[dict]) -> list[str]:
    """For a size measured at two image counts: each engine's per-run fixed cost and its
    throughput past it (seconds = fixed + images / rate, through the two measured points)."""
    lines = []
    for size in sorted({row["size"] for row in rows}):
        at = sorted((row for row in rows if row["size"] == size), key=lambda row: row["images"])
        if len(at) < 2:
            continue
        small, large = at[0], at[-1]
        rates, fixed = {}, {}
        for k in ("offline", "local", "ray"):
            if k in small and k in large:
                t0, t1 = small["images"] / small[k], large["images"] / large[k]
                rates[k] = (large["images"] - small["images"]) / (t1 - t0)
                fixed[k] = t0 - small["images"] / rates[k]
        lines.append(f"  {size}px past each run's fixed cost ({small['images']} vs {large['images']} images): "
                     + ", ".join(f"{k} {rates[k]:.0f} img/s + {fixed[k]:.1f} s a run" for k in rates))
        if "ray" in rates:
            lines.append(f"    ray {rates['ray'] / rates['local']:.0%} of local past the fixed costs "
                         f"(the ratio a run of millions of images approaches)")
    return lines


if __name__ == "__main__":
    main()
