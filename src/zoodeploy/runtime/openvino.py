"""OpenVINO runner: an ONNX variant compiled by OpenVINO's CPU plugin, every setting explicit.

OpenVINO picks some settings by itself: on a CPU with BF16 (AVX512_BF16 / AMX) its default
inference precision is bf16, which changes a model's numbers without saying so. This runner
always sets the precision (f32 unless the variant's recipe says bf16), the thread count, the
performance hint and the number of streams, reads back what the compiled model uses and
refuses a mismatch, and reports it all in `settings` for the card.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from zoodeploy.artifact import Artifact
from zoodeploy.card import ModelCard
from zoodeploy.errors import ArtifactError, first_line
from zoodeploy.recipes import OpenVinoRecipe
from zoodeploy.runtime.base import Closing, RunOptions, check_input, split_batch

DEVICE = "CPU"
PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16"}  # card spelling -> OpenVINO's
VERSION = ov.__version__.split("-")[0]  # 2026.4.1-22982-... -> 2026.4.1
STUCK_S = 120.0  # a request in flight this long is stuck, not slow (a batch of 64 at 224 px takes ~2 s)
WAIT_STEP_MS = 500


def ov_config(threads: int, precision: str = "f32", hint: str = "LATENCY", streams: int | None = None) -> dict[str, str]:
    """The CPU plugin's config with nothing left to its defaults (one stream unless told)."""
    if precision not in PRECISIONS:
        raise ArtifactError(f"OpenVINO inference precision must be f32 or bf16, got {precision!r}")
    if hint not in ("LATENCY", "THROUGHPUT"):
        raise ArtifactError(f"OpenVINO performance hint must be LATENCY or THROUGHPUT, got {hint!r}")
    return {"INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": hint,
            "INFERENCE_PRECISION_HINT": PRECISIONS[precision], "NUM_STREAMS": str(streams or 1)}


def read_error(path: Path, e: BaseException) -> str:
    """OpenVINO's reason a model cannot be read or compiled, as one line: the line that names the
    operation where there is one (its messages run to dozens of lines of C++ context)."""
    lines = (ln.strip() for ln in str(e).splitlines())
    op = next((ln for ln in lines if "operation" in ln.lower() or "op " in ln.lower()), None)
    return f"OpenVINO {VERSION} cannot run {path.name}: {op[:300] if op else first_line(e)}"


def compile_onnx(path: Path, config: dict[str, str], core: ov.Core | None = None) -> ov.CompiledModel:
    """`path` read and compiled for the CPU with `config`, checked to be in effect."""
    core = core or ov.Core()
    try:
        compiled = core.compile_model(core.read_model(str(path)), DEVICE, config)
    except RuntimeError as e:  # OpenVINO raises RuntimeError / its Exception subclasses
        raise ArtifactError(read_error(path, e)) from None
    got = _text(compiled.get_property("INFERENCE_PRECISION_HINT"))
    if got != config["INFERENCE_PRECISION_HINT"]:  # e.g. bf16 asked on a CPU without it
        raise ArtifactError(f"OpenVINO {VERSION} compiled {path.name} with inference precision {got}, not "
                            f"{config['INFERENCE_PRECISION_HINT']} as asked")
    return compiled


def _text(value: Any) -> str:
    """A property as text: an element type by its short name (f32, not "<Type: 'float32'>"),
    an enum by its member name."""
    if isinstance(value, ov.Type):
        return value.get_type_name()
    return str(getattr(value, "name", value))


def in_effect(compiled: ov.CompiledModel) -> dict[str, str]:
    """What the compiled model reports for the settings that change its figures."""
    keys = ("INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT", "NUM_STREAMS",
            "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING", "EXECUTION_MODE_HINT")
    out = {}
    for k in keys:
        try:
            out[k] = _text(compiled.get_property(k))
        except RuntimeError:  # a key this release does not report
            pass
    return out


class OpenVinoRunner(Closing):
    """One compiled model: with one stream, one synchronous infer request (the latency path); with
    several, one request per stream, and `run` cuts a batch into one part per stream and keeps them
    all in flight (the throughput path: OpenVINO's THROUGHPUT hint).

    Not OpenVINO's AsyncInferQueue: a request specializes itself to an input shape on its first run,
    and several requests doing that at once on a dynamic-batch model can deadlock the CPU plugin's
    thread pool on a machine of few cores, inside a `wait_all` that has no timeout (ultralytics saw it
    on 4-core CI runners, ultralytics/ultralytics#25921 and #25923; a CI run of ours hung for an hour
    on 2 cores, most likely there). So the first run of each shape on each request runs alone, one
    at a time; only requests that know their shape run together; and every wait is bounded
    (`STUCK_S`)."""

    def __init__(self, path: Path, name: str, options: RunOptions, precision: str = "f32",
                 hint: str = "LATENCY", streams: int | None = None):
        if options.device != "cpu":
            raise ArtifactError(f"the OpenVINO runner runs on the CPU only, not {options.device!r}")
        self.name = name
        self.path = path
        config = ov_config(options.num_threads, precision, hint, streams)
        self.compiled = compile_onnx(path, config)
        inp = self.compiled.input(0)
        shape = inp.get_partial_shape()
        self.input_shape = tuple(int(d.get_length()) for d in list(shape)[1:])
        self.streams = int(config["NUM_STREAMS"])
        self.request_batch = int(shape[0].get_length()) if shape[0].is_static else None  # a fixed-batch export
        self.batch = self.request_batch * self.streams if self.request_batch else None  # what `run` takes
        self.dtype = np.uint8 if inp.get_element_type().get_type_name() == "u8" else np.float32
        self.requests = [self.compiled.create_infer_request() for _ in range(self.streams)]
        self.request = self.requests[0]
        self._shapes: list[set[tuple[int, ...]]] = [set() for _ in self.requests]  # shapes each request has run
        effect = in_effect(self.compiled)  # OpenVINO may run fewer streams than asked (no more than threads)
        self.settings: dict[str, Any] = {
            "runtime": "openvino", "version": VERSION, "device": DEVICE, "intra_op_threads": options.num_threads,
            "precision": config["INFERENCE_PRECISION_HINT"], "config": effect,
            **({"mode": f"{self.streams} requests in flight on {effect.get('NUM_STREAMS', '?')} streams"}
               if self.streams > 1 else {})}

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.input_shape, self.batch, self.dtype)
        if self.streams == 1:
            self.request.infer({0: x})
            return self.request.get_output_tensor(0).data.copy()  # the request reuses its buffer
        return self._run_in_flight(x)

    def _run_in_flight(self, x: np.ndarray) -> np.ndarray:
        parts = split_batch(x, self.streams)
        out: list[np.ndarray | None] = [None] * len(parts)
        jobs = list(zip(self.requests, parts, self._shapes))
        for i, (request, part, shapes) in enumerate(jobs):
            if part.shape not in shapes:  # a first run at this shape: alone, finished before the next
                request.start_async({0: part})
                out[i] = self._finish(request)
                shapes.add(part.shape)
        running = [i for i, o in enumerate(out) if o is None]
        for i in running:
            jobs[i][0].start_async({0: jobs[i][1]})
        for i in running:
            out[i] = self._finish(jobs[i][0])
        return np.concatenate(out)

    def _finish(self, request: ov.InferRequest) -> np.ndarray:
        """The request's logits once it is done; an error, not a hang, when it never is."""
        deadline = time.monotonic() + STUCK_S
        while not request.wait_for(WAIT_STEP_MS):  # in steps, so that Ctrl-C is seen between them
            if time.monotonic() > deadline:
                for r in self.requests:
                    r.cancel()
                raise ArtifactError(f"OpenVINO {VERSION}: a request of {self.name} still running after "
                                    f"{STUCK_S:g} s with {self.streams} in flight (stuck in the CPU plugin); "
                                    "one request at a time avoids it (predict: give --batch)")
        return request.get_output_tensor(0).data.copy()

    def close(self) -> None:
        self.requests = []
        self.request = self.compiled = None


def open_variant(artifact: Artifact | Path, card: ModelCard, variant: str, options: RunOptions) -> OpenVinoRunner:
    """The variant as its recipe says (another kind: OpenVINO's f32 latency path); `options.streams`
    > 1 asks for the throughput path whatever the recipe's hint."""
    v = card.variants[variant]
    r = v.recipe if isinstance(v.recipe, OpenVinoRecipe) else None
    hint, streams = (r.performance_hint, r.num_streams) if r else ("LATENCY", None)
    if options.streams > 1:
        hint, streams = "THROUGHPUT", options.streams
    return OpenVinoRunner(Artifact.of(artifact).file(v), variant, options,
                          precision=r.inference_precision if r else "f32", hint=hint, streams=streams)
