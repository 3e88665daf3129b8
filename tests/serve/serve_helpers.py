"""Helpers of the serving tests: a real `bentoml serve` from the repository root, upload bytes."""

from __future__ import annotations

import io
from pathlib import Path

from server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
MODEL = "mobilenet_v2"  # the README's default model
# small, so the tests reach them
LIMITS = {"ZOODEPLOY_MAX_PIXELS": "4000000", "ZOODEPLOY_MAX_IMAGES": "8", "ZOODEPLOY_MAX_UPLOAD_MB": "1"}


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def start_server(tmp: Path, env: dict[str, str], target: str = ".", **kw) -> ServerProcess:
    """`bentoml serve` from the repository root with BENTOML_HOME in `tmp` (1 worker: 2 cores)."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"BENTOML_HOME": str(tmp / "bentoml"), "BENTOML_DO_NOT_TRACK": "True", "ZOODEPLOY_WORKERS": "1",
           **LIMITS, **env}
    return ServerProcess(target, cwd=kw.pop("cwd", REPO), env=env, log=tmp / "server.log", **kw).start()
