"""The served model, outside BentoML: which variant, on what, and the request glue around it.

Nothing here runs a model of its own: variants run through `zoodeploy.runtime.open_runner`,
images go through `zoodeploy.preprocess`, exactly as `zoodeploy evaluate` does, so the served
answer is the offline answer.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard, Variant
from zoodeploy.errors import ArtifactError, ImageError, ZoodeployError
from zoodeploy.preprocess import Preprocessing, load_image, preprocess, softmax
from zoodeploy.runtime import InputError, Runner, RunOptions, check_input
from zoodeploy.serve.config import DEFAULT_ARTIFACT, DEFAULT_MAX_BATCH, TENSORRT, ServeConfig, ort_threads
from zoodeploy.target import Device, needs_gpu

log = logging.getLogger("bentoml.zoodeploy")  # under "bentoml": the server log shows it
WARMUP_RUNS = 3  # first runs allocate buffers and spin up thread pools; /readyz waits for them


class RequestError(ZoodeployError):
    """A request the server refuses (bad image, bad tensor, too many items): the client's to fix."""


# --- which model, which variant, on what -------------------------------------------------------

def artifact_dir(config: ServeConfig) -> Path:
    """The artifact directory to serve: a store model's directory, or a directory on disk."""
    if config.model:
        from zoodeploy.serve.store import stored_artifact
        return stored_artifact(config.model)
    path = Path(config.artifact) if config.artifact else DEFAULT_ARTIFACT
    if not (path / "card.json").is_file():
        how = ("build it with `bash scripts/demo.sh`, or serve another with "
               "ZOODEPLOY_ARTIFACT=DIR / ZOODEPLOY_MODEL=TAG") if not config.artifact else \
            "pass an artifact directory made by `zoodeploy train` + `zoodeploy export` (it holds card.json)"
        raise ArtifactError(f"no model to serve: {path.resolve()} has no card.json; {how}")
    return path.resolve()


def made_for_gpu(variant: Variant) -> bool:
    """GPU-only engines, and ONNX variants made for a GPU (the fp16 recipe records `for_gpu`)."""
    return needs_gpu(variant) or getattr(variant.recipe, "for_gpu", False)


def provider_for(variant: Variant, config: ServeConfig) -> tuple[str, str | None]:
    """(provider, note): as configured (ZOODEPLOY_PROVIDER), else where the card says the variant
    is meant to run. A GPU-only engine is refused on the CPU."""
    if config.provider is None:
        return (Device.cuda if made_for_gpu(variant) else Device.cpu).value, None
    if needs_gpu(variant) and config.provider == Device.cpu:
        raise ArtifactError(f"variant {variant.name!r} is a {variant.runtime} engine and runs only on an "
                            "NVIDIA GPU; serve it with ZOODEPLOY_PROVIDER=cuda, or pick an ONNX variant")
    if made_for_gpu(variant) and config.provider == Device.cpu:
        return Device.cpu.value, (f"variant {variant.name!r} was made for a GPU; it runs on the CPU here "
                                  "because ZOODEPLOY_PROVIDER=cpu asks for it")
    return config.provider, None


def device_for(provider: str) -> Device:
    """The device a provider runs on: `tensorrt` is TensorRT on CUDA."""
    return Device.cpu if provider == Device.cpu else Device.cuda


def resources_for(provider: str) -> dict[str, Any]:
    """BentoML `resources` of the service: one GPU when the variant runs on one.

    The hook for GPU deployments: BentoML assigns the GPU (CUDA_VISIBLE_DEVICES) to the worker,
    and `bentoml containerize` / BentoCloud schedule the Bento on a GPU node.
    """
    return {"gpu": 1} if device_for(provider) is Device.cuda else {}


def run_options(config: ServeConfig, provider: str, streams: int = 1) -> RunOptions:
    """How the variant runs: on the provider's device; threads from the worker count; `streams`
    requests in flight; no spinning, so idle threads leave the cores to the API process that decodes
    images. `tensorrt` puts ONNX Runtime's TensorRT execution provider in front of CUDA (other
    runtimes ignore it)."""
    extra: tuple[str, ...] = ()
    if provider == TENSORRT:
        from zoodeploy.runtime.ort import TENSORRT as TENSORRT_EP
        extra = (TENSORRT_EP,)
    return RunOptions(threads=config.threads or ort_threads(config.workers), device=device_for(provider),
                      spin=False, extra_providers=extra, streams=streams)


def batching(config: ServeConfig, variant: Variant, provider: str, objective: str) -> tuple[int, int, str | None]:
    """(requests in flight per model call, most images in one call, a note on where they came from).
    What the server was told wins; a card built with `--select throughput` is served as `bench
    --throughput` measured its variant on this kind of host (batch x requests in flight); else one
    request at a time, batches of up to DEFAULT_MAX_BATCH."""
    best = variant.settled_throughput if objective == "throughput" else None
    if best is None or device_for(provider) is not Device.cpu or None not in (config.streams, config.max_batch_size):
        return config.streams or 1, config.max_batch_size or DEFAULT_MAX_BATCH, None
    streams = config.streams or best.streams
    most = config.max_batch_size or max(DEFAULT_MAX_BATCH, best.images)
    return streams, most, (f"{variant.name}: {streams} request(s) in flight, batches of up to {most}, as `bench "
                           f"--throughput` measured it (batch {best.batch} x {best.streams} in flight, "
                           f"{best.throughput:,.0f} img/s) for a card built for throughput")


@dataclass(frozen=True)
class Plan:
    """Everything decided before a model is loaded; both services derive the same plan."""

    artifact: Artifact  # its card read once, here
    variant: str  # the one rule's choice (`zoodeploy.artifact.resolve_variant`)
    provider: str
    streams: int  # requests in flight per model call
    max_batch_size: int  # most images adaptive batching puts in one model call
    notes: tuple[str, ...]  # choices the card did not make itself, for the log
    batching_note: str | None = None  # where streams and max_batch_size came from, when from the card

    @classmethod
    def make(cls, config: ServeConfig) -> Plan:
        art = Artifact.of(artifact_dir(config))
        variant = art.resolve_variant(config.variant)
        provider, where = provider_for(variant, config)
        build = art.card.provenance.build
        streams, most, how = batching(config, variant, provider, build.objective if build else "latency")
        return cls(art, variant.name, provider, streams, most, (where,) if where else (), how)

    @property
    def card(self) -> ModelCard:
        return self.artifact.card

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.card.input_shape


# --- the worker's state ----------------------------------------------------------------------

class ServedModel:
    """The runner of the planned variant, warmed up, with the settings it really runs with."""

    def __init__(self, plan: Plan, config: ServeConfig):
        from zoodeploy.runtime import open_runner
        for note in plan.notes:
            log.warning(note)
        if plan.batching_note:
            log.info(plan.batching_note)
        self.plan = plan
        self.runner: Runner = open_runner(plan.artifact, plan.variant, run_options(config, plan.provider, plan.streams))
        self._check_providers()
        x = np.zeros((1, *plan.input_shape), plan.card.preprocessing.np_dtype)
        times = []
        for _ in range(WARMUP_RUNS):
            start = time.perf_counter()
            self.runner.run(x)
            times.append(time.perf_counter() - start)
        self.single_ms = min(times) * 1000.0  # one image, warm: how long a lone request holds the model
        log.info("serving %s variant %r from %s: %s", plan.card.name, plan.variant, plan.artifact,
                 _describe(self.runner.settings))

    def _check_providers(self) -> None:
        # runtime.ort already refuses a session that fell back; this makes the CPU case explicit too
        in_use = self.runner.settings.get("providers")
        if device_for(self.plan.provider) is Device.cpu and in_use and in_use[0] != "CPUExecutionProvider":
            raise ArtifactError(f"asked for the CPU, but ONNX Runtime runs on {in_use[0]}")

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.runner.run(x)

    def describe(self) -> dict[str, Any]:
        return {"variant": self.plan.variant, "provider": self.plan.provider, "requests_in_flight": self.plan.streams,
                "max_batch_size": self.plan.max_batch_size, **self.runner.settings}


def _describe(settings: dict[str, Any]) -> str:
    keys = ("runtime", "version", "providers", "device", "intra_op_threads", "spinning", "mode")
    return ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)


# --- requests ------------------------------------------------------------------------------------

def images_to_tensor(blobs: Sequence[bytes], prep: Preprocessing, max_pixels: int) -> np.ndarray:
    """Decode and preprocess uploaded images as `zoodeploy evaluate` does: the model's input batch."""
    arrays = []
    for i, blob in enumerate(blobs):
        try:
            arrays.append(preprocess(load_image(blob, max_pixels=max_pixels), prep))
        except ImageError as e:
            where = f"image {i + 1} of {len(blobs)}: " if len(blobs) > 1 else ""
            raise RequestError(where + _UNIDENTIFIED.sub("unknown image format", str(e))) from None
    return np.stack(arrays)


def image_pixels(blob: bytes) -> float:
    """Width x height from the image header alone (no decoding); infinite when it has none."""
    try:
        with Image.open(io.BytesIO(blob)) as img:
            return img.size[0] * img.size[1]
    except Exception:  # noqa: BLE001 - not an image: images_to_tensor says what is wrong with it
        return float("inf")


# Pillow names an undecodable in-memory file by its repr, memory address included
_UNIDENTIFIED = re.compile(r"cannot identify image file <_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def tensor_input(x: np.ndarray, shape: tuple[int, int, int], max_rows: int) -> np.ndarray:
    """A client's tensor as model input: numbers of shape (N, C, H, W), as float32."""
    if x.dtype.kind not in "fiu":  # JSON carries numbers without a width: any real number is fine
        raise RequestError(f"tensor must hold numbers (float32), got {_dtype_name(x)} values")
    try:
        x = check_input(x.astype(np.float32, copy=False), shape)
    except InputError as e:
        raise RequestError(str(e).replace("input", "tensor", 1)) from None
    if len(x) > max_rows:
        raise RequestError(f"tensor has {len(x)} rows, over the limit of {max_rows} per request; split it")
    if not np.isfinite(x).all():
        raise RequestError("tensor holds NaN or infinite values")
    return x


def _dtype_name(x: np.ndarray) -> str:
    return {"b": "boolean", "U": "string", "S": "bytes", "O": "mixed or nested"}.get(x.dtype.kind, str(x.dtype))


def top_k(logits: np.ndarray, labels: list[str], k: int) -> list[dict[str, Any]]:
    """Per image: the label, its probability, and the k most likely classes."""
    probs = softmax(logits.astype(np.float32))
    k = max(1, min(k, probs.shape[1]))
    out = []
    for p in probs:
        order = np.argsort(-p, kind="stable")[:k]
        top = [{"label": labels[i], "index": int(i), "probability": float(p[i])} for i in order]
        out.append({**top[0], "top_k": top})
    return out


def essentials(plan: Plan, runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """`GET /metadata`: what a client needs to trust and use the answers."""
    card, v = plan.card, plan.card.variants[plan.variant]
    return {
        "model": card.name, "variant": v.name, "precision": v.precision, "runtime": v.runtime,
        "sha256": v.sha256, "labels": card.labels, "input_shape": ["N", *plan.input_shape],
        "preprocessing": card.preprocessing.to_dict(), "selected_by_card": card.selected == v.name,
        "accuracy": v.accuracy.model_dump(mode="json", exclude={"per_class"}) if v.accuracy else None,
        "latency": {b: s.model_dump(mode="json", exclude={"settings"}) for b, s in v.latency.items()},
        "data": card.data.source if card.data else None, "serving": runtime or {},
    }
