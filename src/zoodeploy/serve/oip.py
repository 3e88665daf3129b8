"""The Open Inference Protocol (KServe v2, REST) for the served model, with Triton's extensions.

`tritonclient.http`, KServe's clients and any other v2 client talk to the BentoML service as to
a Triton server: `GET /v2`, `/v2/health/{live,ready}`, `/v2/models/{name}[/versions/1][/ready]`
and `POST /v2/models/{name}[/versions/1]/infer`. The model is named after the card; its one
version is "1", as in the Triton repository `zoodeploy package --format triton` writes.

Infer takes one FP32 tensor (N, 3, H, W), as JSON `data` or in the binary tensor data extension
(a JSON header of `Inference-Header-Content-Length` bytes, then raw little-endian tensors),
answers logits as JSON or binary as each output asks (`binary_data`, or `binary_data_output`
for all), and honours the classification extension (`classification: k` on an output: the
top-k as BYTES strings "value:index:label", as Triton returns them). Requests go through the
same adaptive batching as `/classify`. A bad request is a 4xx `{"error": "..."}`.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zoodeploy import __version__
from zoodeploy.card import ModelCard
from zoodeploy.serve.guard import json_problem
from zoodeploy.serve.served import RequestError, tensor_input

log = logging.getLogger("bentoml.zoodeploy")
VERSION = "1"  # the model's one version, as in the Triton model repository
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ("binary_tensor_data", "classification")
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan", "torch": "pytorch_libtorch"}
ENCODINGS = {"gzip": 31, "deflate": 15}  # Content-Encoding -> zlib wbits; tritonclient can send both


class ProtocolError(RequestError):
    """A request the protocol refuses, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InferenceModel:
    """What `/v2/models/{name}` describes: the served variant's one input and one output."""

    name: str
    platform: str
    input_name: str
    input_shape: tuple[int, int, int]
    output_name: str
    labels: tuple[str, ...]
    version: str = VERSION

    @classmethod
    def from_card(cls, card: ModelCard, variant: str) -> InferenceModel:
        runtime = card.variants[variant].runtime
        return cls(card.name, PLATFORMS.get(runtime, runtime), card.input_name,
                   card.input_shape, card.output_name, tuple(card.labels))

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "versions": [self.version], "platform": self.platform,
                "inputs": [{"name": self.input_name, "datatype": "FP32", "shape": [-1, *self.input_shape]}],
                "outputs": [{"name": self.output_name, "datatype": "FP32", "shape": [-1, len(self.labels)]}]}


@dataclass(frozen=True)
class Output:
    name: str
    binary: bool  # raw bytes after the JSON header, else JSON `data`
    classification: int = 0  # top-k as BYTES "value:index:label"; 0: the logits


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    x: np.ndarray  # float32 (N, 3, H, W), checked
    outputs: tuple[Output, ...]


def server_metadata() -> dict[str, Any]:
    return {"name": "zoodeploy", "version": __version__, "extensions": list(EXTENSIONS)}


# --- decoding a request ---------------------------------------------------------------------

def parse_infer(body: bytes, header_length: str | None, spec: InferenceModel, max_rows: int) -> InferRequest:
    """An infer request body (JSON, or JSON header + binary tensors) as a checked InferRequest."""
    header, binary = _split(body, header_length)
    # bounded before it is built: a value per input element, and room for the request's own fields
    problem = json_problem(header, max_rows * math.prod(spec.input_shape) + 64)
    if problem:
        raise ProtocolError(problem[1], problem[0])
    doc = _json_object(header)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f"`id` must be a string, got {type(request_id).__name__}")
    x = _input(doc.get("inputs"), binary, spec)
    return InferRequest(request_id, tensor_input(x, spec.input_shape, max_rows), _outputs(doc, spec))


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not (header_length.strip().isascii() and header_length.strip().isdigit()):  # "²".isdigit() is True
        raise ProtocolError(f"{HEADER_LENGTH} must be a byte count, got {header_length!r}")
    n = int(header_length)
    if n > len(body):
        raise ProtocolError(f"{HEADER_LENGTH} is {n} but the body has only {len(body)} bytes")
    return body[:n], body[n:]


def _json_object(header: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(header)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"the request is not valid JSON ({e}); binary tensors need the {HEADER_LENGTH} "
                            "header") from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"the request must be a JSON object with `inputs`, got {type(doc).__name__}")
    return doc


def _params(obj: dict[str, Any], what: str) -> dict[str, Any]:
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError(f"`parameters` of {what} must be an object")
    return params


def _input(inputs: Any, binary: bytes, spec: InferenceModel) -> np.ndarray:
    """The one input tensor, from its JSON `data` or from the binary part of the body."""
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(f"`inputs` must be a list of one tensor, `{spec.input_name}`")
    t = inputs[0]
    if t.get("name") != spec.input_name:
        raise ProtocolError(f"unknown input {t.get('name')!r}; this model takes one input, `{spec.input_name}`")
    if t.get("datatype") != "FP32":
        raise ProtocolError(f"input `{spec.input_name}` has datatype {t.get('datatype')!r}; this model takes FP32")
    shape = _shape(t.get("shape"), spec)
    count = math.prod(shape)
    size = _params(t, f"input `{spec.input_name}`").get("binary_data_size")
    if size is None:
        if binary:
            raise ProtocolError(f"{len(binary)} bytes follow the JSON header, but no input declares "
                                "`binary_data_size`")
        x = _json_numbers(t.get("data"), spec.input_name)
    else:
        x = _binary_tensor(size, binary, count, spec.input_name, t.get("data") is not None)
    if x.size != count:
        raise ProtocolError(f"input `{spec.input_name}` holds {x.size} values; shape {shape} needs {count}")
    return x.reshape(shape)


def _shape(shape: Any, spec: InferenceModel) -> list[int]:
    wanted = f"[N, {', '.join(map(str, spec.input_shape))}]"
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ProtocolError(f"input `{spec.input_name}` needs a `shape` of integers, {wanted}")
    if len(shape) != 4 or tuple(shape[1:]) != spec.input_shape or shape[0] < 1:
        raise ProtocolError(f"input `{spec.input_name}` has shape {shape}; this model takes {wanted} with N >= 1")
    return shape


def _json_numbers(data: Any, name: str) -> np.ndarray:
    if data is None:
        raise ProtocolError(f"input `{name}` has no `data` (nor a `binary_data_size` parameter)")
    try:
        x = np.asarray(data)
    except ValueError:
        raise ProtocolError(f"input `{name}`: `data` is ragged; send a flat or nested list of numbers") from None
    if x.dtype.kind not in "fiu":
        raise ProtocolError(f"input `{name}`: `data` must hold numbers (FP32)")
    return x.astype(np.float32).reshape(-1)


def _binary_tensor(size: Any, binary: bytes, count: int, name: str, has_data: bool) -> np.ndarray:
    if has_data:
        raise ProtocolError(f"input `{name}` has both `data` and `binary_data_size`; send one")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError(f"input `{name}`: `binary_data_size` must be a byte count")
    if size != len(binary):
        raise ProtocolError(f"input `{name}` declares binary_data_size {size}, but {len(binary)} bytes follow "
                            f"the JSON header ({HEADER_LENGTH} may be wrong)")
    if size != 4 * count:
        raise ProtocolError(f"input `{name}`: {size} bytes are not {count} FP32 values (4 bytes each)")
    return np.frombuffer(binary, dtype="<f4").astype(np.float32)


def _outputs(doc: dict[str, Any], spec: InferenceModel) -> tuple[Output, ...]:
    every_binary = _params(doc, "the request").get("binary_data_output", False)
    if not isinstance(every_binary, bool):
        raise ProtocolError("`binary_data_output` must be true or false")
    requested = doc.get("outputs")
    if requested is None:
        return (Output(spec.output_name, every_binary),)
    if not isinstance(requested, list) or not requested or not all(isinstance(o, dict) for o in requested):
        raise ProtocolError(f"`outputs` must be a list of output objects, e.g. [{{\"name\": \"{spec.output_name}\"}}]")
    if len(requested) > 1:
        raise ProtocolError(f"this model has one output, `{spec.output_name}`; request it once")
    return (_output(requested[0], every_binary, spec),)


def _output(o: dict[str, Any], every_binary: bool, spec: InferenceModel) -> Output:
    if o.get("name") != spec.output_name:
        raise ProtocolError(f"unknown output {o.get('name')!r}; this model has one output, `{spec.output_name}`")
    params = _params(o, f"output `{spec.output_name}`")
    binary, k = params.get("binary_data", every_binary), params.get("classification", 0)
    if not isinstance(binary, bool):
        raise ProtocolError("`binary_data` must be true or false")
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ProtocolError(f"`classification` must be a number of classes >= 1, got {k!r}")
    return Output(spec.output_name, binary, min(k, len(spec.labels)))


# --- encoding the answer --------------------------------------------------------------------

def classification(logits: np.ndarray, labels: tuple[str, ...], k: int) -> np.ndarray:
    """Triton's classification extension: per row the k highest values as b"value:index:label".

    The value is written as Triton writes it (C++ `std::to_string`, i.e. printf "%f": 6 decimals,
    `-0.377683:8:8`), so a client comparing strings gets the same bytes from Triton and from here."""
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return np.array([[f"{float(row[i]):f}:{i}:{labels[i]}".encode() for i in idx]
                     for row, idx in zip(logits.astype(np.float32), order)], dtype=object).reshape(len(logits), k)


def serialize_bytes(values: np.ndarray) -> bytes:
    """A BYTES tensor in the binary extension: each element as a 4-byte little-endian length + bytes."""
    return b"".join(len(v).to_bytes(4, "little") + v for v in values.reshape(-1))


def encode_infer(spec: InferenceModel, request: InferRequest, logits: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON alone, or a JSON header then the binary outputs."""
    outputs, blobs = [], []
    for o in request.outputs:
        if o.classification:
            values, datatype = classification(logits, spec.labels, o.classification), "BYTES"
        else:
            values, datatype = np.ascontiguousarray(logits, dtype="<f4"), "FP32"
        entry: dict[str, Any] = {"name": o.name, "datatype": datatype, "shape": list(values.shape)}
        if o.binary:
            blobs.append(serialize_bytes(values) if datatype == "BYTES" else values.tobytes())
            entry["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            flat = values.reshape(-1)
            entry["data"] = [v.decode() for v in flat] if datatype == "BYTES" else flat.tolist()
        outputs.append(entry)
    doc = {"model_name": spec.name, "model_version": spec.version, "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    return header + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


# --- the HTTP routes --------------------------------------------------------------------------

Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]


class OpenInference:
    """Starlette routes of the protocol around `infer` (the service's batcher) and `ready`."""

    def __init__(self, spec: InferenceModel, infer: Infer, ready: Callable[[], bool], max_rows: int, max_bytes: int):
        self.spec, self._infer, self._ready = spec, infer, ready
        self.max_rows, self.max_bytes = max_rows, max_bytes

    def routes(self) -> list[Route]:
        model = "/v2/models/{model}"
        versioned = "/v2/models/{model}/versions/{version}"
        routes = [Route("/v2", self.server, methods=["GET"]),
                  Route("/v2/health/live", self.live, methods=["GET"]),
                  Route("/v2/health/ready", self.ready, methods=["GET"])]
        for base in (model, versioned):
            routes += [Route(base, self.model, methods=["GET"]),
                       Route(base + "/ready", self.model_ready, methods=["GET"]),
                       Route(base + "/infer", self.infer, methods=["POST"])]
        # anything else under /v2 (another path or method) is a JSON 404, not BentoML's page
        return routes + [Route("/v2/{rest:path}", self.unknown, methods=["GET", "POST", "PUT", "DELETE"])]

    async def server(self, request: Request) -> Response:
        return JSONResponse(server_metadata())

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self._ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def model(self, request: Request) -> Response:
        return await _answer(self._metadata(request))

    async def model_ready(self, request: Request) -> Response:
        return await _answer(self._model_ready(request))

    async def infer(self, request: Request) -> Response:
        return await _answer(self._infer_response(request))

    async def unknown(self, request: Request) -> Response:
        return JSONResponse({"error": f"no Open Inference Protocol endpoint {request.method} {request.url.path}; "
                                      f"this server has GET /v2, /v2/health/ready, /v2/models/{self.spec.name} "
                                      f"and POST /v2/models/{self.spec.name}/infer"}, status_code=404)

    def _check_model(self, request: Request) -> None:
        name, version = request.path_params["model"], request.path_params.get("version")
        if name != self.spec.name:
            raise ProtocolError(f"unknown model {name!r}; this server serves {self.spec.name!r}", 404)
        if version is not None and version != self.spec.version:
            raise ProtocolError(f"model {name!r} has no version {version!r}; its one version is "
                                f"{self.spec.version!r}", 404)

    async def _metadata(self, request: Request) -> Response:
        self._check_model(request)
        return JSONResponse(self.spec.metadata())

    async def _model_ready(self, request: Request) -> Response:
        self._check_model(request)
        ready = self._ready()
        return JSONResponse({"name": self.spec.name, "ready": ready}, status_code=200 if ready else 503)

    async def _infer_response(self, request: Request) -> Response:
        self._check_model(request)
        body = _decoded(await _read_body(request, self.max_bytes), request.headers.get("content-encoding"),
                        self.max_bytes)
        parsed = parse_infer(body, request.headers.get(HEADER_LENGTH), self.spec, self.max_rows)
        content, headers = encode_infer(self.spec, parsed, await self._infer(parsed.x))
        return Response(content, headers=headers)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) past `max_bytes` before all of it is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_big(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_big(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _decoded(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    if not encoding or encoding == "identity":
        return body
    if encoding not in ENCODINGS:
        raise ProtocolError(f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none", 415)
    inflate = zlib.decompressobj(ENCODINGS[encoding])
    try:
        out = inflate.decompress(body, max_bytes + 1)
    except zlib.error as e:
        raise ProtocolError(f"the body is not valid {encoding} data ({e})") from None
    if len(out) > max_bytes or inflate.unconsumed_tail:
        raise _too_big(max_bytes)
    return out


def _too_big(max_bytes: int) -> ProtocolError:
    return ProtocolError(f"request body over the limit of {max_bytes / 2**20:g} MiB; send fewer rows per request",
                         413)


async def _answer(work: Awaitable[Response]) -> Response:
    from bentoml.exceptions import ServiceUnavailable
    try:
        return await work
    except RequestError as e:
        log.info("refused an Open Inference Protocol request: %s", e)
        return JSONResponse({"error": str(e)}, status_code=getattr(e, "status", 400))
    except ServiceUnavailable as e:  # the batcher shed the request: it waited past its latency budget
        return JSONResponse({"error": str(e)}, status_code=503)
