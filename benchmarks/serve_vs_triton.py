"""zoodeploy's `bentoml serve` against a real Triton server: the same variant file, the same clients.

    .venv/bin/python benchmarks/serve_vs_triton.py --artifact artifacts/default --variant int8

Both servers run at once on this machine (Triton from NVIDIA's PyTriton wheel, set up by
tests/triton_server.py; zoodeploy as the tests start it) and every phase runs against Triton and
then zoodeploy before the next phase, so that drift in the machine's load falls on both:

* v2: tritonclient HTTP with binary tensors (input and output), 1 client sequential, then 16
  concurrent clients, then 1 client again one second after that burst (stickiness);
* png: one PNG per request, zoodeploy's POST /classify (multipart) against Triton's image-input
  ensemble (`zoodeploy package --format triton --input image`: BYTES in, top-5 labels out);
* start-up (launch to ready), resident memory of each server's whole process tree, and server CPU
  per request (the CPU time the tree spent during a 16-client phase, over its requests).

Printed as ratios zoodeploy / Triton against the goals of issue #31, with a JSON record and a plot
in --out. Not a pass/fail test. Caveats, stated in the record too: Triton's onnxruntime backend is
not in the wheel, so the model runs in the test-only Python-backend stand-in
(tests/triton_backend/onnxruntime, ONNX Runtime with 1 intra-op thread), and zoodeploy is given
the same thread count (--threads); clients and servers share this machine's cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# the server harnesses of the tests are not part of the installed package
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "serve")]

BEFORE = "before"
COLORS = {"triton": "#76b900", BEFORE: "#8c8c8c", "zoodeploy": "#dd8452"}
GOALS = {"v2_throughput_16": 0.7, "cpu_per_request": 1.2, "png_throughput_16": 0.7, "after_burst_vs_idle": 1.2}
TOP_K = 5


@dataclass
class Phase:
    """One client load against one server."""

    clients: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float  # the server's process tree

    @property
    def throughput(self) -> float:
        return (self.requests - self.errors) / self.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", type=Path, default=Path("artifacts/default"))
    ap.add_argument("--variant", default=None, help="default: the card's selected variant")
    ap.add_argument("--threads", type=int, default=1, help="zoodeploy's ONNX Runtime threads (Triton's stand-in: 1)")
    ap.add_argument("--workers", type=int, default=1, help="zoodeploy's worker processes (Triton: 1 model instance)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=2000, help="per concurrent phase")
    ap.add_argument("--sequential", type=int, default=300, help="requests per sequential phase")
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout (a copy of the repository root) served beside, as `before`")
    ap.add_argument("--out", type=Path, default=Path("artifacts/bench/serve_vs_triton"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        record = run(args, Path(tmp))
    (args.out / "serve_vs_triton.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(record, args.out / "serve_vs_triton.png")
    report(record)
    print(f"\nwrote {args.out / 'serve_vs_triton.json'} and {args.out / 'serve_vs_triton.png'}")


def run(args, tmp: Path) -> dict:
    from triton_server import TritonServer, triton_install

    from zoodeploy.artifact import Artifact
    from zoodeploy.package.triton import RepositoryConfig, make_repository
    from zoodeploy.serve.samples import write_samples
    from zoodeploy.serve.served import images_to_tensor
    art = Artifact.of(args.artifact)
    variant = art.resolve_variant(args.variant).name
    png = write_samples(art, tmp / "samples")[0].read_bytes()
    x = images_to_tensor([png], art.card.preprocessing, 1 << 30)
    repo = make_repository(art, tmp / "models", RepositoryConfig(variant=variant, input="image"))
    install = triton_install()
    load_before = os.getloadavg()

    started, servers = {}, {}
    with contextlib.ExitStack() as stack:
        def start(name: str, launch: Callable[[], object]) -> None:
            t0 = time.perf_counter()
            servers[name] = stack.enter_context(launch())
            started[name] = time.perf_counter() - t0
        start("triton", lambda: TritonServer(repo.path, log=tmp / "triton.log", install=install))
        if args.before:
            start(BEFORE, lambda: zoodeploy_server(args, variant, tmp / BEFORE, args.before))
        start("zoodeploy", lambda: zoodeploy_server(args, variant, tmp / "zoodeploy", REPO))
        rss_idle = {name: s.usage()[1] for name, s in servers.items()}
        calls = clients_for(servers, art.card, x, png, repo.image_model)
        phases = measure(servers, calls, args)
        rss_after = {name: s.usage()[1] for name, s in servers.items()}
    return summarize(art, variant, args, started, rss_idle, rss_after, phases, load_before)


def zoodeploy_server(args, variant: str, tmp: Path, root: Path):
    """`bentoml serve` from checkout `root` of exactly this variant, as the tests start it (with the
    product's defaults, not the tests' small limits), whatever this shell has set; not started yet."""
    from serve_helpers import LIMITS, ServerProcess
    tmp.mkdir(parents=True)
    env = {**{k: "" for k in [*os.environ, *LIMITS] if k.startswith("ZOODEPLOY_")},
           "BENTOML_HOME": str(tmp / "bentoml"), "BENTOML_DO_NOT_TRACK": "True",
           "ZOODEPLOY_ARTIFACT": str(args.artifact.resolve()), "ZOODEPLOY_VARIANT": variant,
           "ZOODEPLOY_THREADS": str(args.threads), "ZOODEPLOY_WORKERS": str(args.workers),
           "PYTHONPATH": str(root / "src")}  # that checkout's package, not the one installed (editable) here
    return ServerProcess(".", cwd=root, env=env, log=tmp / "server.log")


# --- clients ---------------------------------------------------------------------------------

Call = Callable[[], None]  # one request; raises on a wrong answer


def clients_for(servers: dict, card, x: np.ndarray, png: bytes, image_model: str) -> dict[str, dict[str, Callable]]:
    """Per kind of request and server: a factory of one client's request function (a client each)."""
    calls: dict[str, dict[str, Callable]] = {"v2": {}, "png": {}}
    for name, server in servers.items():
        host = server.url.removeprefix("http://")
        calls["v2"][name] = lambda host=host: v2_call(host, card, x)
        calls["png"][name] = (lambda url=server.url: triton_png_call(url, image_model, png)) if name == "triton" \
            else (lambda url=server.url: classify_call(url, png))
    return calls


def v2_call(url: str, card, x: np.ndarray) -> Call:
    import tritonclient.http as th
    client = th.InferenceServerClient(url, network_timeout=120)
    inp = th.InferInput(card.input_name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = [th.InferRequestedOutput(card.output_name, binary_data=True)]

    def call() -> None:
        logits = client.infer(card.name, [inp], outputs=out).as_numpy(card.output_name)
        if logits.shape != (1, card.num_classes):
            raise AssertionError(f"logits of shape {logits.shape}")
    return call


def triton_png_call(url: str, model: str, png: bytes) -> Call:
    import tritonclient.http as th
    client = th.InferenceServerClient(url, network_timeout=120)
    inp = th.InferInput("image", [1, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[png]], dtype=object), binary_data=True)
    out = [th.InferRequestedOutput("logits", binary_data=True, class_count=TOP_K)]

    def call() -> None:
        top = client.infer(model, [inp], outputs=out).as_numpy("logits")
        if top.shape != (1, TOP_K):
            raise AssertionError(f"classification of shape {top.shape}")
    return call


def classify_call(url: str, png: bytes) -> Call:
    import httpx
    client = httpx.Client(base_url=url, timeout=120)

    def call() -> None:
        r = client.post("/classify", files={"image": ("digit.png", png, "image/png")},
                        data={"top_k": str(TOP_K)})
        r.raise_for_status()
    return call


# --- loads -------------------------------------------------------------------------------------

def measure(servers: dict, calls: dict, args) -> dict[str, dict[str, Phase]]:
    """Every phase against each server in turn; a v2 burst is followed, one second later, by the
    same server's sequential phase (the stickiness goal)."""
    phases: dict[str, dict[str, Phase]] = {}
    n = str(args.clients)

    def phase(kind: str, label: str, name: str, clients: int, requests: int) -> None:
        print(f"{kind} {label:>13} clients -> {name} ...", file=sys.stderr)
        phases.setdefault(f"{kind}/{label}", {})[name] = load(servers[name], calls[kind][name], clients, requests)

    for kind in ("v2", "png"):
        for name in servers:
            load(servers[name], calls[kind][name], args.clients, 200)  # warm-up: connections, pools, batcher
        for name in servers:
            phase(kind, "1", name, 1, args.sequential)
        for name in servers:
            phase(kind, n, name, args.clients, args.requests)
            if kind == "v2":
                time.sleep(1.0)
                phase(kind, "1-after-burst", name, 1, args.sequential)
    return phases


def load(server, make_call: Callable[[], Call], clients: int, requests: int) -> Phase:
    """`requests` requests from `clients` threads (each its own connection), as fast as answered."""
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]
    calls = [make_call() for _ in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        start.wait()
        for _ in range(per_client[i]):
            t = time.perf_counter()
            try:
                calls[i]()
            except Exception:  # noqa: BLE001 - counted; the phase goes on
                errors[i] += 1
            latencies[i].append(time.perf_counter() - t)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    cpu0 = server.usage()[0]
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = server.usage()[0] - cpu0
    ms = np.array([v for per in latencies for v in per]) * 1000.0
    return Phase(clients, requests, sum(errors), wall, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)),
                 cpu * 1000.0 / requests)


# --- results -----------------------------------------------------------------------------------

def summarize(art, variant, args, started, rss_idle, rss_after, phases, load_before) -> dict:
    served = [name for name in started if name != "triton"]
    ratios = {name: ratios_of(name, phases, started, rss_after, str(args.clients)) for name in served}
    return {
        "model": art.card.name, "variant": variant, "file": art.card.variants[variant].file,
        "cpu": _cpu_model(), "cores": len(os.sched_getaffinity(0)),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "zoodeploy_threads": args.threads, "zoodeploy_workers": args.workers,
        "triton_model_runner": "tests/triton_backend/onnxruntime (Python stand-in, 1 thread)",
        "startup_s": started, "rss_mb_idle": {k: v / 2**20 for k, v in rss_idle.items()},
        "rss_mb_after": {k: v / 2**20 for k, v in rss_after.items()},
        "phases": {key: {name: {**asdict(p), "throughput": p.throughput} for name, p in by.items()}
                   for key, by in phases.items()},
        "ratios": ratios, "goals": GOALS,
        "met": {name: {k: (r[k] >= g if "throughput" in k else r[k] <= g) for k, g in GOALS.items()}
                for name, r in ratios.items()},
    }


def ratios_of(name: str, phases, started, rss_after, n: str) -> dict[str, float]:
    """Server `name` against Triton (the goals' ratios first), and its own latency after a burst vs idle."""
    def ratio(key: str, field: str) -> float:
        return getattr(phases[key][name], field) / getattr(phases[key]["triton"], field)
    return {"v2_throughput_16": ratio(f"v2/{n}", "throughput"),
            "cpu_per_request": ratio(f"v2/{n}", "cpu_ms_per_request"),
            "png_throughput_16": ratio(f"png/{n}", "throughput"),
            "after_burst_vs_idle": phases["v2/1-after-burst"][name].p50_ms / phases["v2/1"][name].p50_ms,
            "png_cpu_per_request": ratio(f"png/{n}", "cpu_ms_per_request"),
            "v2_p50_1": ratio("v2/1", "p50_ms"), "png_p50_1": ratio("png/1", "p50_ms"),
            "startup": started[name] / started["triton"], "rss_after": rss_after[name] / rss_after["triton"]}


def _cpu_model() -> str:
    from zoodeploy.target import cpu_model
    return cpu_model()


def report(r: dict) -> None:
    print(f"\n{r['model']} {r['variant']} ({r['file']}) on {r['cores']} cores, {r['cpu']}; zoodeploy "
          f"{r['zoodeploy_workers']} worker(s) x {r['zoodeploy_threads']} thread(s) "
          f"(load average before/after {r['load_average_before'][0]:.2f} / {r['load_average_after'][0]:.2f})")
    print(f"{'phase':<22}{'server':<11}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}{'errors':>8}")
    for key, by in r["phases"].items():
        for name, p in by.items():
            print(f"{key:<22}{name:<11}{p['throughput']:>8.0f}{p['p50_ms']:>9.2f}{p['p99_ms']:>9.2f}"
                  f"{p['cpu_ms_per_request']:>12.3f}{p['errors']:>8}")
    print("start-up s: " + ", ".join(f"{k} {v:.2f}" for k, v in r["startup_s"].items())
          + "; resident MB idle/after: " + ", ".join(f"{k} {r['rss_mb_idle'][k]:.0f}/{v:.0f}"
                                                     for k, v in r["rss_mb_after"].items()))
    names = list(r["ratios"])
    print(f"\nratios to Triton (goal){''.join(f'{n:>12}' for n in names)}")
    for k in r["ratios"][names[-1]]:
        goal = GOALS.get(k)
        verdicts = "".join(f"{r['ratios'][n][k]:>8.2f} {'' if goal is None else 'met ' if r['met'][n][k] else 'MISS'}"
                           for n in names)
        print(f"  {k:<22}{'' if goal is None else ('>= ' if 'throughput' in k else '<= ') + str(goal):<8}{verdicts}")


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = list(r["phases"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, field, unit in zip(axes, ("throughput", "p50_ms", "cpu_ms_per_request"), ("req/s", "p50 ms", "CPU ms/req")):
        pos = np.arange(len(keys))
        names = list(r["startup_s"])
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            ax.bar(pos + (i - (len(names) - 1) / 2) * width, [r["phases"][k][name][field] for k in keys], width,
                   label=name, color=COLORS.get(name))
        ax.set_xticks(pos, [k.replace("/", "\n") for k in keys], fontsize=8)
        ax.set_ylabel(unit)
        ax.set_title(unit)
    axes[0].legend()
    ratios = ", ".join(f"{k} {r['ratios']['zoodeploy'][k]:.2f}" for k in GOALS)
    fig.suptitle(f"{r['model']} {r['variant']}, {r['cores']} cores: zoodeploy / Triton: {ratios}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
