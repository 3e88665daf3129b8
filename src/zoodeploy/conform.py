"""`zoodeploy conform`: the same canary images through every way an artifact is served, one table.

The reference is the in-process runner on the canaries preprocessed by the card (what `zoodeploy
evaluate` runs). Every other way gets the same image files and answers as its clients see it:

    predict        `zoodeploy predict` (the library, logits kept)
    bundle         the edge bundle's own predict.py in a child Python where torch cannot be imported
    serve-classify `bentoml serve` (--serve URL of a running one, or `local`: started here, on a free
                   loopback port, for the check): POST /classify, every class's probability
    serve-v2       the same server's /v2 infer, the preprocessed tensor in, logits out
    triton         a running Triton on the `--format triton` repository (--triton URL): tensor in
    triton-image   the same server's `<model>_image` ensemble (`--input image`): image bytes in

Each way is judged against the reference by the variant's tolerance (`export.validate.TOLERANCES`,
by precision): max error (on logits, or on probabilities where the way gives only those), top-1
and top-5 agreement. Any way outside it fails the check, by name. Extension by registry: a way is
one function `(Canaries, Options) -> Scores` and one `WAYS` line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoodeploy.artifact import Artifact
from zoodeploy.errors import ValidationError, ZoodeployError, first_line
from zoodeploy.preprocess import load_image, preprocess_batch, softmax

DEFAULT_CANARIES = 16
V2_ROWS = 4  # images per /v2 request: under the service's default --max-images (8) and any Triton max batch
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


class ConformanceError(ValidationError):
    """A way out answers differently from the in-process runner."""


class NotServed(ZoodeployError):
    """The server given does not serve this way (a `--input tensor` repository has no image ensemble)."""


@dataclass(frozen=True)
class Options:
    variant: str = "selected"
    serve: str | None = None  # http://host:port of a running `bentoml serve` of the artifact; LOCAL: start one
    triton: str | None = None  # host:port (or http://host:port) of a running Triton on its repository
    timeout: float = 60.0


@dataclass
class Canaries:
    """The images every way is sent, and the reference answers (the in-process runner's logits)."""

    art: Artifact
    variant: str
    files: list[Path]
    x: np.ndarray  # the files preprocessed by the card
    logits: np.ndarray
    workdir: Path


@dataclass(frozen=True)
class Scores:
    values: np.ndarray  # (N, classes)
    kind: str = "logits"  # or "probabilities" (a way that returns only those)


@dataclass(frozen=True)
class Row:
    way: str
    n: int
    top1: float  # % agreement with the runner
    top5: float
    max_diff: float
    kind: str
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None  # why this way was not checked (not served where pointed)

    @property
    def ok(self) -> bool:
        return not self.failures


# --- the canaries ------------------------------------------------------------------------------

def canary_files(art: Artifact, images: Path | None, into: Path, n: int = DEFAULT_CANARIES) -> list[Path]:
    """Image files under `images`, or n held-out test images (one class in turn) written as PNG into `into`."""
    if images is not None:
        files = sorted(p for p in Path(images).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ZoodeployError(f"{images} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return files
    from zoodeploy.package.bundle import pick_samples, save_png
    test = art.splits().test
    into.mkdir(parents=True, exist_ok=True)
    files = []
    for j, i in enumerate(pick_samples(test.labels, n)):
        save_png(test.image(i), into / f"{j:02d}.png")
        files.append(into / f"{j:02d}.png")
    return files


def make_canaries(artifact: Artifact | str | Path, images: Path | None, workdir: Path, variant: str) -> Canaries:
    from zoodeploy.evaluate.accuracy import variant_logits
    art = Artifact.of(artifact)
    name = art.resolve_variant(variant).name
    files = canary_files(art, images, workdir / "canaries")
    x = preprocess_batch([load_image(f) for f in files], art.card.preprocessing)
    return Canaries(art, name, files, x, variant_logits(art, name, x), workdir)


# --- the ways out ------------------------------------------------------------------------------

def _predict(c: Canaries, o: Options) -> Scores:
    from zoodeploy.predict import PredictConfig, predict
    out = c.workdir / "predict.jsonl"
    predict(c.art, c.files, PredictConfig(out=out, variant=c.variant, logits=True))
    rows = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    labels = c.art.card.labels
    return Scores(np.array([[rows[str(f)][f"logit_{lab}"] for lab in labels] for f in c.files], np.float32))


def _bundle(c: Canaries, o: Options) -> Scores:
    from zoodeploy.package.archive import safe_extract
    from zoodeploy.package.bundle import PackageConfig, package
    bundle = package(c.art, c.workdir / "bundle.tar.gz", PackageConfig(variant=c.variant, samples=2))
    root = safe_extract(bundle.path, c.workdir / "bundle")
    # torch-free, as on a device: a `torch` that cannot be imported goes first on the path
    poison = c.workdir / "no-torch" / "torch"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('an edge bundle must run without PyTorch')\n")
    env = {**os.environ, "PYTHONPATH": str(poison.parent)}
    r = subprocess.run([sys.executable, str(root / "predict.py"), "--json", "--logits", *map(str, c.files)],
                       capture_output=True, text=True, timeout=600, cwd=root, env=env)
    if r.returncode:
        raise ZoodeployError(f"the bundle's predict.py exited {r.returncode}: {r.stderr.strip()[-300:]}")
    return Scores(np.array([row["logits"] for row in json.loads(r.stdout)], np.float32))


def _serve_classify(c: Canaries, o: Options) -> Scores:
    import httpx
    labels = c.art.card.labels
    probs = []
    with httpx.Client(base_url=_url(o.serve, "--serve"), timeout=o.timeout) as client:
        for f in c.files:
            r = client.post("/classify", files={"image": (f.name, f.read_bytes())},
                            data={"top_k": str(len(labels))})
            _ok(r, "serve /classify")
            by_label = {t["label"]: t["probability"] for t in _top(r.json())}
            probs.append([by_label[lab] for lab in labels])
    return Scores(np.array(probs, np.float32), "probabilities")


def _top(answer: dict) -> list[dict]:
    return answer["top_k"]  # /classify: {label, index, probability, top_k: [{label, index, probability}, ...]}


def _serve_v2(c: Canaries, o: Options) -> Scores:
    return Scores(_v2_tensor(_url(o.serve, "--serve"), c, o))


def _triton(c: Canaries, o: Options) -> Scores:
    return Scores(_v2_tensor(_url(o.triton, "--triton"), c, o))


def _triton_image(c: Canaries, o: Options) -> Scores:
    """Image bytes to the `<model>_image` ensemble, in the binary tensor extension (as tritonclient sends)."""
    import httpx

    from zoodeploy.serve.oip import HEADER_LENGTH, serialize_bytes
    card = c.art.card
    base = _url(o.triton, "--triton")
    if httpx.get(f"{base}/v2/models/{card.name}_image/ready", timeout=o.timeout).status_code != 200:
        raise NotServed(f"no {card.name}_image model (package with --input image for it)")
    blob = serialize_bytes(np.array([f.read_bytes() for f in c.files], dtype=object))
    header = json.dumps({"inputs": [{"name": "image", "shape": [len(c.files), 1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(blob)}}],
                         "outputs": [{"name": card.output_name, "parameters": {"binary_data": False}}]}).encode()
    r = httpx.post(f"{base}/v2/models/{card.name}_image/infer", content=header + blob,
                   headers={HEADER_LENGTH: str(len(header)), "content-type": "application/octet-stream"},
                   timeout=o.timeout)
    return Scores(_v2_output(r, card.output_name, "triton-image"))


def _v2_tensor(base: str, c: Canaries, o: Options) -> np.ndarray:
    """The preprocessed canaries to /v2 infer, V2_ROWS a request, in the binary tensor extension
    (as tritonclient sends them; the service bounds JSON tensors and rows per request)."""
    import httpx

    from zoodeploy.serve.oip import HEADER_LENGTH
    card = c.art.card
    datatype = "UINT8" if c.x.dtype == np.uint8 else "FP32"  # the card's input dtype
    out = []
    with httpx.Client(timeout=o.timeout) as client:
        for start in range(0, len(c.x), V2_ROWS):
            x = c.x[start:start + V2_ROWS]
            raw = np.ascontiguousarray(x, dtype=np.uint8 if datatype == "UINT8" else "<f4").tobytes()
            header = json.dumps({"inputs": [{"name": card.input_name, "shape": list(x.shape), "datatype": datatype,
                                             "parameters": {"binary_data_size": len(raw)}}],
                                 "outputs": [{"name": card.output_name, "parameters": {"binary_data": False}}]})
            r = client.post(f"{base}/v2/models/{card.name}/infer", content=header.encode() + raw,
                            headers={HEADER_LENGTH: str(len(header.encode())),
                                     "content-type": "application/octet-stream"})
            out.append(_v2_output(r, card.output_name, f"{base} /v2 infer"))
    return np.concatenate(out)


def _v2_output(r, name: str, what: str) -> np.ndarray:
    _ok(r, what)
    [out] = [t for t in r.json()["outputs"] if t["name"] == name]
    return np.array(out["data"], np.float32).reshape(out["shape"])


def _url(value: str | None, option: str) -> str:
    if not value:
        raise ZoodeployError(f"this way needs {option} URL")
    return value.rstrip("/") if "://" in value else f"http://{value.rstrip('/')}"


def _ok(r, what: str) -> None:
    if r.status_code != 200:
        raise ZoodeployError(f"{what} answered {r.status_code}: {r.text[:300]}")


Way = Callable[[Canaries, Options], Scores]
WAYS: dict[str, tuple[Way, str | None]] = {  # name -> (how, the option it needs)
    "predict": (_predict, None),
    "bundle": (_bundle, None),
    "serve-classify": (_serve_classify, "serve"),
    "serve-v2": (_serve_v2, "serve"),
    "triton": (_triton, "triton"),
    "triton-image": (_triton_image, "triton"),
}


def ways_for(options: Options) -> list[str]:
    """Every way the options reach: predict and bundle always, the servers where a URL is given."""
    return [name for name, (_, needs) in WAYS.items() if needs is None or getattr(options, needs)]


# --- judging -----------------------------------------------------------------------------------

def judge(way: str, scores: Scores, reference: np.ndarray, precision: str) -> Row:
    """One way's answers against the runner's logits, by the variant's tolerance."""
    from zoodeploy.export.validate import TOLERANCES, compare_logits, failures
    ref = reference if scores.kind == "logits" else softmax(reference)
    if scores.values.shape != ref.shape:
        return Row(way, len(ref), 0.0, 0.0, float("inf"), scores.kind,
                   [f"answered shape {scores.values.shape}, not {ref.shape}"])
    c = compare_logits(scores.values, ref, batch=len(ref))
    return Row(way, c.samples, c.top1_agreement, c.top5_agreement, c.max_abs_err, scores.kind,
               failures(c, TOLERANCES[precision]))


LOCAL = "local"  # Options.serve: start `bentoml serve` of the artifact here for the check


@contextlib.contextmanager
def local_server(art: Artifact, variant: str, timeout: float) -> Iterator[str]:
    """A real `bentoml serve` of the artifact's variant on a free loopback port, ready (its /readyz
    answers) within `timeout` seconds, stopped when the block ends; yields its URL."""
    import httpx
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ZOODEPLOY_ARTIFACT": str(art.path.resolve()), "BENTOML_DO_NOT_TRACK": "True"}
    env.pop("ZOODEPLOY_MODEL", None)
    if variant != "selected":
        env["ZOODEPLOY_VARIANT"] = variant
    else:
        env.pop("ZOODEPLOY_VARIANT", None)
    bentoml = Path(sys.executable).with_name("bentoml")
    cmd = [str(bentoml) if bentoml.exists() else "bentoml", "serve", "zoodeploy.serve.service:Classifier",
           "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                    raise ZoodeployError(f"`bentoml serve` of {art.path} stopped before it was ready: {tail[0][:300]}")
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ZoodeployError(f"`bentoml serve` of {art.path} was not ready within {timeout:g} s")
                time.sleep(0.2)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def conform(artifact: Artifact | str | Path, images: Path | None = None, options: Options | None = None,
            ways: list[str] | None = None) -> list[Row]:
    """The canaries through every way (default `ways_for(options)`); one Row per way, the runner's first.
    With `options.serve == LOCAL` a `bentoml serve` of the artifact is started for the check."""
    options = options or Options()
    art = Artifact.of(artifact)
    unknown = sorted(set(ways or []) - set(WAYS))
    if unknown:
        raise ZoodeployError(f"unknown way(s) {', '.join(unknown)}; choose from {', '.join(WAYS)}")
    if options.serve == LOCAL:
        if not any(WAYS[w][1] == "serve" for w in ways or ways_for(options)):
            return conform(art, images, dataclasses.replace(options, serve=None), ways)
        with local_server(art, options.variant, options.timeout) as url:
            return conform(art, images, dataclasses.replace(options, serve=url), ways)
    with tempfile.TemporaryDirectory(prefix="zoodeploy-conform-") as tmp:
        c = make_canaries(art, images, Path(tmp), options.variant)
        precision = str(art.card.variants[c.variant].precision)
        rows = [judge("runner", Scores(c.logits), c.logits, precision)]
        for name in ways or ways_for(options):
            try:
                scores = WAYS[name][0](c, options)
            except NotServed as e:
                rows.append(Row(name, 0, 0.0, 0.0, 0.0, "-", skipped=str(e)))
                continue
            except Exception as e:  # noqa: BLE001  a way that cannot answer fails, by name, like a wrong one
                rows.append(Row(name, len(c.files), 0.0, 0.0, float("inf"), "-", [first_line(e)]))
                continue
            rows.append(judge(name, scores, c.logits, precision))
    return rows


def check(rows: list[Row]) -> None:
    """Raise ConformanceError naming every way that disagrees."""
    bad = [r for r in rows if not r.ok]
    if bad:
        raise ConformanceError("; ".join(f"{r.way} disagrees with the in-process runner: {', '.join(r.failures)}"
                                         for r in bad))
