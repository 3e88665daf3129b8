"""The BentoML service. `bentoml serve` at the repository root serves `artifacts/default`.

One service, one process per worker: it decodes and preprocesses images (small ones on the event
loop, larger ones in threads), refuses bad input with a 400 JSON error naming the problem, and
runs the variant through BentoML's adaptive-batching dispatcher in the same process
(`zoodeploy.serve.batching`), so concurrent requests are grouped into one model run without a
second HTTP hop. Beside its own endpoints it speaks the Open Inference Protocol (KServe v2) at
/v2 (`zoodeploy.serve.oip`), through the same batching.

What is served comes from `--arg`s or ZOODEPLOY_* variables (see `zoodeploy.serve.config`):
`ZOODEPLOY_ARTIFACT=DIR bentoml serve`, or `ZOODEPLOY_MODEL=TAG` for a store model.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from zoodeploy.serve import bentoml_compat
from zoodeploy.serve.batching import Batcher
from zoodeploy.serve.config import ServeConfig, bento_arguments
from zoodeploy.serve.guard import UploadGuard
from zoodeploy.serve.oip import InferenceModel, OpenInference
from zoodeploy.serve.served import (Plan, RequestError, ServedModel, essentials, image_pixels, images_to_tensor,
                                    resources_for, tensor_input, top_k)

log = logging.getLogger("bentoml.zoodeploy")  # under "bentoml": the server's log configuration shows it
T = TypeVar("T")
TopK = Annotated[int, Field(ge=1, description="How many of the most likely classes to return.")]

# Decided at import, in `bentoml serve` itself and in each worker: a missing artifact stops the
# server before it starts.
CONFIG = ServeConfig.load(bento_arguments())
PLAN = Plan.make(CONFIG)


async def _get_metadata(request: Request) -> JSONResponse:
    return JSONResponse(await bentoml.get_current_service().describe())


def _loaded() -> bool:
    """Whether this worker's service instance (the loaded, warmed-up variant) exists yet."""
    try:
        bentoml.get_current_service()
    except BentoMLException:
        return False
    return True


async def _v2_infer(x: np.ndarray) -> np.ndarray:
    return await bentoml.get_current_service().infer(x)  # the batcher /classify and /predict use


# slow and idle connections closed, connections per worker capped (in each worker, before uvicorn starts)
bentoml_compat.guard_connections(CONFIG.header_timeout_s, CONFIG.max_connections)
V2 = OpenInference(InferenceModel.from_card(PLAN.card, PLAN.variant), _v2_infer, _loaded,
                   max_rows=CONFIG.max_images, max_bytes=CONFIG.max_upload_mb * 2**20)
# a Starlette app, not a bare Router: BentoML mounts it "passively" (a path none of its routes serve,
# or serve with another method, falls through to BentoML's own 404 / 405) only when it is one
ROUTES = Starlette(routes=[Route("/metadata", _get_metadata, methods=["GET"]), *V2.routes()])

# Per-request work BentoML does by default that costs more than the model (profiled under 16-client /v2
# load, MobileNetV2 int8 at 32 px, 2 cores: 1.5 ms of server CPU a request, the model 0.2 ms of it):
# OpenTelemetry spans, made even at BentoML's default sample rate of 0, cost 0.5 ms a request; the access
# log line 0.05 ms. Both stay BentoML settings: a deployment that wants them sets
# services.zoodeploy.tracing.excluded_urls / services.zoodeploy.logging.access.enabled in its
# BentoML configuration (BENTOML_CONFIG), which wins over these defaults.
UNTRACED = {"excluded_urls": ".*"}  # a regular expression every URL matches
NO_ACCESS_LOG = {"access": {"enabled": False}}


@bentoml.service(name="zoodeploy", workers=CONFIG.workers, resources=resources_for(PLAN.provider),
                 traffic={"timeout": 60}, tracing=UNTRACED, logging=NO_ACCESS_LOG)
@bentoml.mount_asgi_app(ROUTES, path="/")
class Classifier:
    """Image classification with the artifact's selected variant, its labels and preprocessing.

    Ready (`/readyz`) only once the variant is loaded and warmed up.
    """

    # a store model is packed into the Bento by `bentoml build --arg model=TAG`
    stored = bentoml.models.BentoModel(CONFIG.model) if CONFIG.model else None

    def __init__(self) -> None:
        self.served = ServedModel(PLAN, CONFIG)
        self.labels = PLAN.card.labels
        self.prep = PLAN.card.preprocessing
        self.infer = Batcher(self.served.run, PLAN.max_batch_size, CONFIG.max_latency_ms, PLAN.variant,
                             self.served.single_ms)

    @bentoml.api
    async def classify(self, image: Path, top_k: TopK = 5) -> dict[str, Any]:
        """One image (PNG, JPEG, any mode Pillow opens) -> label, probability and the top-k classes."""
        return await _answer(self._classify([image], top_k), single=True)

    @bentoml.api
    async def classify_batch(self, images: list[Path], top_k: TopK = 5) -> list[dict[str, Any]]:
        """Several images in one request -> one answer each, in order."""
        return await _answer(self._classify(images, top_k))

    @bentoml.api
    async def predict(self, tensor: np.ndarray) -> np.ndarray:
        """A preprocessed float32 tensor (N, 3, H, W) -> logits (N, classes)."""
        return await _answer(self._predict(tensor))

    @bentoml.api(route="/metadata")
    async def metadata(self) -> dict[str, Any]:
        """The card's essentials: model, variant, labels, preprocessing, accuracy, latency."""
        return await self.describe()

    async def describe(self) -> dict[str, Any]:
        return essentials(PLAN, self.served.describe())

    async def _classify(self, paths: list[Path], k: int) -> list[dict[str, Any]]:
        if not paths:
            raise RequestError("no images: send one or more files in the `images` field")
        if len(paths) > CONFIG.max_images:
            raise RequestError(f"{len(paths)} images, over the limit of {CONFIG.max_images} per request")
        x = await _read_images(paths, self.prep, CONFIG.max_pixels)
        return top_k(await self.infer(x), self.labels, k)

    async def _predict(self, tensor: np.ndarray) -> np.ndarray:
        return await self.infer(tensor_input(tensor, PLAN.input_shape, CONFIG.max_images))


def _json_responses(service) -> None:
    """BentoML works out an output's content type from its JSON schema on every response (about
    1 ms for a dict, 0.4 ms for an array); every output here is JSON, so it is said once."""
    for method in service.apis.values():
        method.output_spec.media_type = "application/json"


_json_responses(Classifier)
# /metrics: one series per route and status, whatever paths clients send
bentoml_compat.bound_metric_endpoints([*(api.route for api in Classifier.apis.values()),
                                       *(route.path for route in ROUTES.routes)])
V2_INFER = "/v2/models/*/infer"
# every route's body bounded (the tensor routes' JSON by element count and depth), every error JSON
Classifier.add_asgi_middleware(UploadGuard, limited=frozenset({"/predict", V2_INFER}), binary=frozenset({V2_INFER}),
                               uploads={"/classify": "image", "/classify_batch": "images"},
                               values=frozenset({"top_k"}), max_bytes=CONFIG.max_upload_mb * 2**20,
                               max_json_elements=CONFIG.max_images * math.prod(PLAN.input_shape) + 64,
                               max_parts=CONFIG.max_images + 8)


# Decoding a small image (a digit, a thumbnail) takes ~0.15 ms, less than the hop to a thread and
# back costs (measured here: 0.2-0.3 ms); larger ones decode off the event loop so that it keeps
# serving other requests meanwhile.
INLINE_BYTES = 256 * 2**10
INLINE_PIXELS = 256 * 256


async def _read_images(paths: list[Path], prep, max_pixels: int) -> np.ndarray:
    """Decode and preprocess the uploads BentoML has spooled to temporary files."""
    if sum(p.stat().st_size for p in paths) <= INLINE_BYTES:
        blobs = [p.read_bytes() for p in paths]
        if sum(image_pixels(b) for b in blobs) <= INLINE_PIXELS:
            return images_to_tensor(blobs, prep, max_pixels)
        return await asyncio.to_thread(images_to_tensor, blobs, prep, max_pixels)
    return await asyncio.to_thread(lambda: images_to_tensor([p.read_bytes() for p in paths], prep, max_pixels))


async def _answer(work: Awaitable[T], single: bool = False) -> T | JSONResponse:
    """The API's result, or a 400 JSON error saying what was wrong with the request."""
    try:
        out = await work
    except RequestError as e:
        log.info("refused a request: %s", e)
        return JSONResponse({"error": str(e)}, status_code=400)
    return out[0] if single else out
