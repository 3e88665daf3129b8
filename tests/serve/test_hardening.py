"""The malformed and costly requests an adversarial pass sent a real `bentoml serve`: each is a 4xx
with {"error": ...} (none a 500), answered before the work it would cost, and the server still serves.

One server for the module (conftest.py).
"""

from __future__ import annotations

import io
import json
import select
import socket
import time
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from serve_helpers import HEADER_TIMEOUT_S

MB = 2**20


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h)).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(body: bytes, boundary: str = "b0und") -> dict:
    return {"content": body, "headers": {"content-type": f"multipart/form-data; boundary={boundary}"}}


def _part(head: bytes, data: bytes = b"\x89PNG") -> bytes:
    return b"--b0und\r\n" + head + b"\r\n\r\n" + data + b"\r\n"


IMAGE = b'Content-Disposition: form-data; name="image"; filename="a.png"'
V2 = "/v2/models/mobilenet_v2/infer"

# (route, httpx.post keywords, status, a phrase of the error); the 12 cases that answered 500 before
CASES = {
    "multipart-without-boundary": ("/classify", {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
                                   400, "without a boundary"),
    "malformed-multipart": ("/classify", _multipart(_part(IMAGE) + b"no closing boundary"), 400,
                            "ends without its closing boundary"),
    "two-content-types": ("/classify", {"content": b"{}", "headers": [("content-type", "application/json"),
                                                                     ("content-type", "text/plain")]},
                          400, "2 Content-Type headers"),
    "100k-part-header-lines": ("/classify", _multipart(_part(IMAGE + b"\r\nX: y" * 100_000) + b"--b0und--\r\n"),
                               400, "headers are over"),  # 600 KB: under the test server's 1 MiB body limit
    "10MB-part-header": ("/classify", _multipart(_part(b"X: " + b"a" * (10 * MB) + b"\r\n" + IMAGE)), 413,
                         "over the limit"),
    "file-as-tensor-to-predict": ("/predict", {"files": {"tensor": ("t.json", b"\xff\xfe\x00")}}, 415,
                                  "takes a JSON body"),
    "non-ascii-header-length": (V2, {"content": b"{}", "headers": {"Inference-Header-Content-Length":
                                                                   "\u00b2".encode("latin-1")}}, 400, "must be a byte count"),
    "deep-json-to-v2": (V2, {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}}, 400,
                        "nested 100000 deep"),
    "deep-json-header-to-v2-binary": (V2, {"content": b"[" * 100_000, "headers": {
        "Inference-Header-Content-Length": "100000", "content-type": "application/octet-stream"}}, 400,
        "nested 100000 deep"),  # the guard leaves a binary body's JSON header to the protocol: still bounded
    "deep-json-to-predict": ("/predict", {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}},
                             400, "nested 100000 deep"),
    "strip-1x1000000": ("/classify", {"files": {"image": ("s.png", _png(1, 1_000_000), "image/png")}}, 400,
                        "a side over the limit"),
    "strip-20000x2": ("/classify", {"files": {"image": ("s.png", _png(20_000, 2), "image/png")}}, 400,
                      "aspect ratio over"),
    "body-to-metadata": ("/metadata", {"content": b"x" * MB}, 413, "takes no upload"),
    # issue 31: a raw image body got pydantic's multi-line error, ?top_k=2 was silently ignored
    "raw-image-body": ("/classify", {"content": _png(8, 8), "headers": {"content-type": "image/png"}}, 415,
                       "multipart form upload in the `image` field"),
    "top-k-in-the-query": ("/classify?top_k=2", {"files": {"image": ("d.png", _png(8, 8), "image/png")}}, 400,
                           "takes its options as form fields (curl -F image=@digit.png -F top_k=...)"),
}


def _still_serves(server, png: bytes) -> None:
    r = httpx.post(server.url + "/classify", files={"image": ("d.png", png, "image/png")}, timeout=60)
    assert r.status_code == 200 and "label" in r.json(), r.text


@pytest.fixture(scope="module")
def digit(test_images) -> bytes:
    return test_images[0][0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_malformed_request_is_a_json_4xx_and_the_server_still_serves(server, digit, case):
    route, kw, status, needle = CASES[case]
    r = httpx.post(server.url + route, timeout=60, **kw)
    assert r.status_code == status, (case, r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json" and needle in r.json()["error"], r.text[:300]
    _still_serves(server, digit)


def test_a_long_client_file_name_never_reaches_a_path(server, digit):
    r = httpx.post(server.url + "/classify", files={"image": ("../" * 20 + "a" * 300 + ".png", digit, "image/png")},
                   timeout=60)
    assert r.status_code == 200 and "label" in r.json(), r.text


def test_json_bodies_are_bounded_by_element_count_before_parsing(server, digit):
    shape = httpx.get(server.url + "/metadata", timeout=30).json()["input_shape"][1:]
    rows = np.zeros((9, *shape)).tolist()  # 9 rows: over the 8 the test server takes
    r = httpx.post(server.url + "/predict", json={"tensor": rows}, timeout=60)
    assert r.status_code == 413 and "elements, over the limit" in r.json()["error"], r.text[:300]


@pytest.mark.parametrize("method, path, status", [("GET", "/nowhere", 404), ("DELETE", "/classify", 405),
                                                  ("PUT", "/metadata", 405)])
def test_the_servers_own_errors_are_json(server, method, path, status):
    r = httpx.request(method, server.url + path, timeout=30)
    assert r.status_code == status and isinstance(r.json()["error"], str), r.text[:300]


def test_a_broken_request_line_gets_a_json_400_and_the_server_keeps_serving(server, digit):
    """uvicorn's parser answers this before any ASGI code runs; the protocol class zoodeploy gives
    uvicorn (serve/connections.py) makes that answer the service's one-line JSON error."""
    url = urlparse(server.url)
    for raw in (b"GARBAGE / HTTP/9.9 extra\r\n\r\n", b"GET / HTTP/1.1\r\nbad header line\r\n\r\n"):
        with socket.create_connection((url.hostname, url.port), timeout=10) as s:
            s.sendall(raw)
            head, _, body = _read_all(s).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head, head
        assert "malformed HTTP request" in json.loads(body)["error"], body
    _still_serves(server, digit)


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _series(url: str) -> set[tuple]:
    """Every series on /metrics: (sample name, labels)."""
    text = httpx.get(url + "/metrics", timeout=30).text
    return {(s.name, tuple(sorted(s.labels.items()))) for f in text_string_to_metric_families(text) for s in f.samples}


def test_unknown_paths_share_one_metrics_label(server):
    """A scanner's junk paths must not grow /metrics: BentoML labels its request metrics with the raw
    path (issue #31: three /v2/models/junkN requests added 60 series)."""
    for path in ("/v2/models/junk0", "/v2/models/junk0/infer", "/junk0/x"):  # a route's first 404 adds its series
        httpx.get(server.url + path, timeout=30)
    before = _series(server.url)
    for n in (1, 2, 3):
        for path in (f"/v2/models/junk{n}", f"/v2/models/junk{n}/infer", f"/junk{n}/x"):
            assert httpx.get(server.url + path, timeout=30).status_code in (404, 405)
    after = _series(server.url)
    assert after == before, sorted(after - before)[:10]
    assert not any("junk" in value for _, labels in after for _, value in labels)


def test_slow_and_idle_connections_are_closed_and_others_served(server, digit):
    """Ten connections that send nothing and ten that send their headers a byte at a time are closed by
    the server once the header timeout (2 s in the test config) has passed; meanwhile it serves others."""
    url = urlparse(server.url)
    start = time.monotonic()
    socks = [socket.create_connection((url.hostname, url.port), timeout=10) for _ in range(20)]
    slow = socks[10:]
    for s in slow:
        s.sendall(b"POST /classify HTTP/1.1\r\n")
    closed: dict[int, float] = {}
    served = False
    try:
        while len(closed) < len(socks) and time.monotonic() - start < HEADER_TIMEOUT_S + 6:
            for s in slow:
                if s.fileno() not in closed:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        closed[s.fileno()] = time.monotonic() - start
            readable, _, _ = select.select([s for s in socks if s.fileno() not in closed], [], [], 0.25)
            for s in readable:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    closed[s.fileno()] = time.monotonic() - start
            if not served:  # while all twenty are open
                _still_serves(server, digit)
                served = True
    finally:
        for s in socks:
            s.close()
    assert len(closed) == len(socks), f"{len(socks) - len(closed)} of {len(socks)} still open after " \
                                      f"{HEADER_TIMEOUT_S + 6} s"
    assert HEADER_TIMEOUT_S - 0.5 <= min(closed.values()) and max(closed.values()) <= HEADER_TIMEOUT_S + 3, closed
    _still_serves(server, digit)
