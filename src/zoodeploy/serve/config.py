"""What the server serves and how: one typed config, read once from `--arg`s and the environment.

`bentoml serve` (and a built Bento) can only pass settings to the service module through bento
arguments (`bentoml serve --arg artifact=DIR`, stored in a Bento by `bentoml build --arg`) or
environment variables (`ZOODEPLOY_ARTIFACT=DIR bentoml serve`). Arguments win over variables,
variables over the defaults below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from zoodeploy.errors import ZoodeployError
from zoodeploy.preprocess import DEFAULT_MAX_PIXELS
from zoodeploy.runtime.base import available_cores
from zoodeploy.target import Device

DEFAULT_ARTIFACT = Path("artifacts") / "default"  # what scripts/demo.sh builds, relative to the repo root
DEFAULT_MAX_BATCH = 32
ENV_PREFIX = "ZOODEPLOY_"
# ZOODEPLOY_PROVIDER: a Device, or `tensorrt`: CUDA with TensorRT in front for what it can build of
# an ONNX variant (ONNX Runtime's TensorRT execution provider; other runtimes run on CUDA as they are)
TENSORRT = "tensorrt"
PROVIDER_CHOICES = (*Device, TENSORRT)


class ServeConfigError(ZoodeployError):
    """A server setting (bento argument or ZOODEPLOY_* variable) that cannot be used."""


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the served model. Each field is `--arg NAME=…` or `ZOODEPLOY_NAME=…`."""

    artifact: str | None = None  # artifact directory (default: artifacts/default)
    model: str | None = None  # or a BentoML model store tag, from `zoodeploy bento import`
    variant: str | None = None  # default: the card's selected variant
    provider: str | None = None  # cpu | cuda | tensorrt (default: cuda for variants made for a GPU, else cpu)
    workers: int = 1  # worker processes (each loads the variant)
    threads: int | None = None  # ONNX Runtime intra-op threads per worker (default: cores / workers)
    # requests in flight per model call and most images in one (adaptive batching); default: what
    # `bench --throughput` found fastest for a card built with --select throughput, else 1 and 32
    streams: int | None = None
    max_batch_size: int | None = None
    max_latency_ms: int = 2000  # adaptive batching sheds a request that would wait longer (503)
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused before decoding (decompression bombs)
    max_images: int = 64  # images (or tensor rows) in one request
    max_upload_mb: int = 64  # request body size; larger ones are refused (413) before parsing
    header_timeout_s: int = 10  # a connection whose request headers are not in by then is closed
    max_connections: int = 1000  # per worker; a request beyond them is answered 503

    def __post_init__(self):
        if self.artifact and self.model:
            raise ServeConfigError("give either artifact (a directory) or model (a store tag), not both")
        if self.provider is not None and self.provider not in PROVIDER_CHOICES:
            raise ServeConfigError(f"provider must be one of {', '.join(PROVIDER_CHOICES)}, got {self.provider!r}")
        for name in ("workers", "max_latency_ms", "max_pixels", "max_images", "max_upload_mb", "header_timeout_s",
                     "max_connections", "threads", "streams", "max_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ServeConfigError(f"{ENV_PREFIX}{name.upper()} must be >= 1, got {getattr(self, name)}")
        if self.max_batch_size is not None and self.max_batch_size < 2:
            raise ServeConfigError("max_batch_size must be >= 2 for adaptive batching to batch anything")

    @property
    def source(self) -> str:
        """The model store tag or artifact directory served, as a person would name it."""
        return self.model or self.artifact or str(DEFAULT_ARTIFACT)

    @classmethod
    def load(cls, args: Mapping[str, Any] | None = None,
             env: Mapping[str, str] | None = None) -> ServeConfig:
        """Bento arguments first, then ZOODEPLOY_* environment variables, then defaults."""
        args = dict(args or {})
        env = os.environ if env is None else env
        unknown = sorted(set(args) - {f.name for f in fields(cls)})
        if unknown:
            raise ServeConfigError(f"unknown bento argument(s) {', '.join(unknown)}; known: "
                                   f"{', '.join(f.name for f in fields(cls))}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = args.get(f.name, env.get(ENV_PREFIX + f.name.upper()))
            if raw not in (None, ""):
                values[f.name] = _parse(f.name, f.type, raw)
        return cls(**values)


def _parse(name: str, type_: str, raw: Any) -> Any:
    if "int" not in type_:
        return str(raw)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ServeConfigError(f"{ENV_PREFIX}{name.upper()} must be an integer, got {raw!r}") from None


def bento_arguments() -> dict[str, Any]:
    """The `--arg` values of `bentoml serve` / `bentoml build` (stored in a built Bento)."""
    import bentoml
    return dict(vars(bentoml.use_arguments()))


def ort_threads(workers: int, cores: int | None = None) -> int:
    """Intra-op threads per worker: the cores this process may use, shared among workers."""
    return max(1, (cores or available_cores()) // workers)
