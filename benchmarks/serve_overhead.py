"""What serving costs: a real `bentoml serve` against the same variant called in-process.

    .venv/bin/python benchmarks/serve_overhead.py [--artifact artifacts/default] [--clients 16]

Measured in one run, on one machine, so the ratios hold even when absolute figures drift:

* latency: p50 of one image through POST /classify (one client, keep-alive) against the same
  work in-process: decode + preprocess + the variant's runner + top-k, with the server's own
  runtime settings. Target: served - in-process <= 3 ms. A third timing, interleaved with the
  two, posts the same upload to a BentoML service that does nothing with it
  (benchmarks/serve_floor.py): BentoML's own floor, so that the overhead splits into the floor
  and what zoodeploy's endpoint adds above it.
* throughput: images/s of 16 concurrent clients against the variant's offline batched
  throughput (batches of the server's max batch size, preprocessed arrays). Target: >= 70%.

Not a pass/fail test. Clients and server share this machine's cores: on 2 cores the 16 client
threads take CPU from the server, which the throughput ratio includes. Writes a JSON record
and a plot (latency distributions, throughput bars) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


# the server harness of the tests (tests/server_process.py) is not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

OVERHEAD_TARGET_MS = 3.0
THROUGHPUT_TARGET = 0.70


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", type=Path, default=Path("artifacts/default"))
    ap.add_argument("--variant", default=None, help="default: the card's selected variant")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=50, help="per client, for throughput")
    ap.add_argument("--seconds", type=float, default=20.0, help="latency measurement budget")
    ap.add_argument("--out", type=Path, default=Path("artifacts/bench/serve"))
    args = ap.parse_args()

    from zoodeploy.serve import Plan, ServeConfig
    from zoodeploy.serve.samples import write_samples
    config = ServeConfig(artifact=str(args.artifact), variant=args.variant)
    plan = Plan.make(config)
    args.out.mkdir(parents=True, exist_ok=True)
    image = write_samples(args.artifact, args.out / "samples")[0].read_bytes()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as home:
        server = start(args.artifact, plan.variant, Path(home))
        floor = start_floor(Path(home))
        try:
            latency = measure_latency(server.url, floor.url, plan, config, image, args.seconds)
            floor.stop()
            served_tput = served_throughput(server, image, args.clients, args.requests)
        finally:
            server.stop()
            floor.stop()
    offline = offline_throughput(plan, config, image, args.seconds)
    record = summarize(plan, latency, served_tput, offline, args, load_before)
    (args.out / "serve_overhead.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(record, latency, args.out / "serve_overhead.png")
    report(record)


def start(artifact: Path, variant: str, home: Path):
    """`bentoml serve` of exactly the variant measured in-process, whatever this shell has set."""
    from server_process import ServerProcess
    env = {**{k: "" for k in os.environ if k.startswith("ZOODEPLOY_")},
           "BENTOML_HOME": str(home / "bentoml"), "BENTOML_DO_NOT_TRACK": "True",
           "ZOODEPLOY_ARTIFACT": str(artifact.resolve()), "ZOODEPLOY_VARIANT": variant}
    print("starting bentoml serve ...", file=sys.stderr)
    return ServerProcess(".", cwd=Path(__file__).resolve().parents[1], env=env, log=home / "server.log").start()


def start_floor(home: Path):
    from server_process import ServerProcess
    env = {"BENTOML_HOME": str(home / "bentoml-floor"), "BENTOML_DO_NOT_TRACK": "True"}
    return ServerProcess("serve_floor:Floor", cwd=Path(__file__).resolve().parent, env=env,
                         log=home / "floor.log").start()


def in_process_call(plan, config, image: bytes):
    """The server's work for one /classify, without HTTP: decode, preprocess, run, top-k."""
    from zoodeploy.runtime import open_runner
    from zoodeploy.serve.served import images_to_tensor, run_options, top_k
    runner = open_runner(plan.artifact, plan.variant, run_options(config, plan.provider))
    return runner, lambda: top_k(runner.run(images_to_tensor([image], plan.card.preprocessing, config.max_pixels)),
                                 plan.card.labels, 5)


def measure_latency(url: str, floor_url: str, plan, config, image: bytes, seconds: float) -> dict:
    import httpx

    from zoodeploy.bench.latency import BenchConfig, measure_many
    runner, local = in_process_call(plan, config, image)
    with httpx.Client(base_url=url, timeout=60) as client, httpx.Client(base_url=floor_url, timeout=60) as bare:
        def upload(c: httpx.Client):
            return lambda: c.post("/classify", files={"image": ("digit.png", image, "image/png")}).raise_for_status()
        cfg = BenchConfig(warmup=20, min_runs=200, max_seconds=seconds)
        print("timing one image: served vs in-process vs BentoML floor, interleaved ...", file=sys.stderr)
        stats = measure_many({"served": upload(client), "in-process": local, "floor": upload(bare)}, batch=1,
                             cfg=cfg, progress=True)
    runner.close()
    return stats


def served_throughput(server, image: bytes, clients: int, per_client: int) -> dict:
    """Images/s of `clients` concurrent clients, and the CPU each process spent per image."""
    import httpx

    def client(n: int) -> int:
        ok = 0
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for _ in range(n):
                ok += c.post("/classify", files={"image": ("digit.png", image, "image/png")}).status_code == 200
        return ok

    with ThreadPoolExecutor(clients) as pool:  # warm-up: connections, the dispatcher's first estimates
        list(pool.map(client, [5] * clients))
    print(f"{clients} clients x {per_client} requests ...", file=sys.stderr)
    cpu_before, batches_before = cpu_seconds(server), model_runs(server.url)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        ok = sum(pool.map(client, [per_client] * clients))
    wall = time.perf_counter() - t0
    cpu = {k: (v - cpu_before[k]) * 1000.0 / max(ok, 1) for k, v in cpu_seconds(server).items()}
    runs, requests = (after - before for after, before in zip(model_runs(server.url), batches_before))
    return {"images_per_s": ok / wall, "ok": ok, "requests": clients * per_client, "seconds": wall,
            "cpu_ms_per_image": cpu, "model_runs": runs, "mean_batch": requests / max(runs, 1)}


def model_runs(url: str) -> tuple[float, float]:
    """(model runs, requests they served) so far, from the adaptive batch size histogram."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from zoodeploy.serve.batching import BATCH_METRIC
    text = httpx.get(url + "/metrics").text
    family = next(f for f in text_string_to_metric_families(text) if f.name == BATCH_METRIC)
    return (sum(x.value for x in family.samples if x.name.endswith("_count")),
            sum(x.value for x in family.samples if x.name.endswith("_sum")))


def cpu_seconds(server) -> dict[str, float]:
    """CPU seconds (user + system) so far of the server's processes and of this client."""
    import psutil
    out = {"client": sum(psutil.Process().cpu_times()[:2]), "server": 0.0}
    for pid in server.worker_pids():
        out["server"] += sum(psutil.Process(pid).cpu_times()[:2])
    return out


def offline_throughput(plan, config, image: bytes, seconds: float) -> dict:
    from zoodeploy.bench.latency import BenchConfig, measure
    from zoodeploy.runtime import open_runner
    from zoodeploy.serve.served import images_to_tensor, run_options
    runner = open_runner(plan.artifact, plan.variant, run_options(config, plan.provider))
    blobs = [image] * config.max_batch_size
    x = images_to_tensor(blobs, plan.card.preprocessing, config.max_pixels)
    cfg = BenchConfig(max_seconds=seconds / 2)
    print(f"offline batched throughput (batch {len(x)}) ...", file=sys.stderr)
    model = measure(runner.run, x, cfg, label="offline model")
    full = measure(lambda _: runner.run(images_to_tensor(blobs, plan.card.preprocessing, config.max_pixels)), x,
                   cfg, label="offline decode+model")
    runner.close()
    return {"batch": len(x), "model_images_per_s": model.throughput, "with_decode_images_per_s": full.throughput,
            "settings": runner.settings}


def summarize(plan, latency, served_tput, offline, args, load_before) -> dict:
    served, local, floor = latency["served"], latency["in-process"], latency["floor"]
    overhead = served.p50_ms - local.p50_ms
    ratio = served_tput["images_per_s"] / offline["model_images_per_s"]
    return {
        "model": plan.card.name, "variant": plan.variant, "artifact": str(args.artifact),
        "cores": len(os.sched_getaffinity(0)), "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "latency_ms": {"served_p50": served.p50_ms, "served_p90": served.p90_ms, "in_process_p50": local.p50_ms,
                       "in_process_p90": local.p90_ms, "overhead_p50": overhead,
                       "bentoml_floor_p50": floor.p50_ms, "added_above_floor_p50": overhead - floor.p50_ms,
                       "stable": all(s.settings.stable for s in (served, local, floor))},
        "throughput": {"served_images_per_s": served_tput["images_per_s"], "clients": args.clients,
                       "served_ok": served_tput["ok"], "served_requests": served_tput["requests"],
                       "offline_batched_images_per_s": offline["model_images_per_s"],
                       "offline_with_decode_images_per_s": offline["with_decode_images_per_s"],
                       "offline_batch": offline["batch"], "served_vs_offline": ratio,
                       "served_vs_offline_with_decode": served_tput["images_per_s"] / offline["with_decode_images_per_s"],
                       "served_cpu_ms_per_image": served_tput["cpu_ms_per_image"],
                       "model_runs": served_tput["model_runs"], "mean_batch": served_tput["mean_batch"]},
        "targets": {"overhead_ms": OVERHEAD_TARGET_MS, "throughput_ratio": THROUGHPUT_TARGET,
                    "overhead_met": overhead <= OVERHEAD_TARGET_MS, "throughput_met": ratio >= THROUGHPUT_TARGET},
        "runtime_settings": offline["settings"],
    }


def plot(record: dict, latency: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lat, tp = record["latency_ms"], record["throughput"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["in-process", "BentoML floor\n(no-op upload)", "served"]
    a.bar(names, [lat["in_process_p50"], lat["bentoml_floor_p50"], lat["served_p50"]],
          color=["#4c72b0", "#8c8c8c", "#dd8452"], label="p50")
    a.scatter([names[0], names[2]], [lat["in_process_p90"], lat["served_p90"]], color="black", zorder=3, label="p90")
    a.set_ylabel("ms per image")
    a.set_title(f"one image: overhead {lat['overhead_p50']:.2f} ms (target <= {OVERHEAD_TARGET_MS:g} ms)")
    a.legend()
    bars = [tp["offline_batched_images_per_s"], tp["offline_with_decode_images_per_s"], tp["served_images_per_s"]]
    b.bar([f"offline batch {tp['offline_batch']}\n(model)", "offline\n(+decode)", f"served\n{tp['clients']} clients"],
          bars, color=["#4c72b0", "#55a868", "#dd8452"])
    b.set_ylabel("images / s")
    b.set_title(f"throughput: served = {tp['served_vs_offline']:.0%} of offline (target >= {THROUGHPUT_TARGET:.0%})")
    fig.suptitle(f"{record['model']} {record['variant']} on {record['cores']} cores "
                 f"(load avg before {record['load_average_before'][0]:.1f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(record: dict) -> None:
    lat, tp, tg = record["latency_ms"], record["throughput"], record["targets"]
    print(f"\n{record['model']} {record['variant']} on {record['cores']} cores "
          f"(load average before/after: {record['load_average_before'][0]:.2f} / {record['load_average_after'][0]:.2f})")
    print(f"one image p50:  served {lat['served_p50']:.2f} ms, in-process {lat['in_process_p50']:.2f} ms "
          f"-> overhead {lat['overhead_p50']:.2f} ms (target <= {tg['overhead_ms']:g} ms: "
          f"{'met' if tg['overhead_met'] else 'MISSED'}){'' if lat['stable'] else ' [timings not stable]'}")
    print(f"                of which BentoML's own floor (the same upload to a no-op service) {lat['bentoml_floor_p50']:.2f} ms; "
          f"zoodeploy's endpoint adds {lat['added_above_floor_p50']:+.2f} ms above floor + in-process work")
    print(f"throughput:     served {tp['served_images_per_s']:.0f} img/s with {tp['clients']} clients "
          f"({tp['served_ok']}/{tp['served_requests']} ok), offline batch {tp['offline_batch']} "
          f"{tp['offline_batched_images_per_s']:.0f} img/s -> {tp['served_vs_offline']:.0%} "
          f"(target >= {tg['throughput_ratio']:.0%}: {'met' if tg['throughput_met'] else 'MISSED'}); "
          f"vs offline with decode {tp['offline_with_decode_images_per_s']:.0f} img/s: "
          f"{tp['served_vs_offline_with_decode']:.0%}")
    cpu = tp["served_cpu_ms_per_image"]
    print("served CPU per image: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu.items())
          + f" (in-process decode + run + top-k: {lat['in_process_p50']:.2f} ms); adaptive batching: "
          f"{tp['served_requests']} requests in {tp['model_runs']:.0f} model runs, mean batch {tp['mean_batch']:.2f}")


if __name__ == "__main__":
    main()
