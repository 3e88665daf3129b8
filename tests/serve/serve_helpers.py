"""Helpers of the serving tests: a real `bentoml serve` from the repository root, upload bytes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
MODEL = "mobilenet_v2"  # the README's default model
# small, so the tests reach them
HEADER_TIMEOUT_S = 2
LIMITS = {"ZOODEPLOY_MAX_PIXELS": "4000000", "ZOODEPLOY_MAX_IMAGES": "8", "ZOODEPLOY_MAX_UPLOAD_MB": "1",
          "ZOODEPLOY_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)}


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


def v2_binary_request(x: np.ndarray, outputs: list[dict] | None = None, name: str = "input",
                      datatype: str = "FP32") -> tuple[bytes, dict[str, str]]:
    """An Open Inference Protocol infer body in the binary tensor data extension, as tritonclient sends it."""
    raw = np.ascontiguousarray(x).tobytes()
    doc = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype,
                       "parameters": {"binary_data_size": len(raw)}}]}
    if outputs is not None:
        doc["outputs"] = outputs
    header = json.dumps(doc).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header)),
                          "content-type": "application/octet-stream"}
