"""The upload guard in front of the service, driven in-process through Starlette's test client."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from zoodeploy.serve.guard import UploadGuard


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    form = await request.form() if "multipart" in request.headers.get("content-type", "") else {}
    return JSONResponse({"bytes": len(body), "fields": sorted(form.keys())})


@pytest.fixture(scope="module")
def client():
    app = Starlette(routes=[Route(p, echo, methods=["POST"]) for p in ("/classify", "/predict", "/other")])
    app.add_middleware(UploadGuard, limited=frozenset({"/predict"}), uploads={"/classify": "image"},
                       values=frozenset({"top_k"}), max_bytes=1000)
    return TestClient(app)


def test_good_uploads_pass_through_unchanged(client):
    r = client.post("/classify", files={"image": ("a.png", b"x" * 100)}, data={"top_k": "3"})
    assert r.status_code == 200 and r.json()["fields"] == ["image", "top_k"]
    assert client.post("/predict", json={"tensor": [1, 2]}).status_code == 200
    assert client.post("/other", content=b"y" * 5000).json()["bytes"] == 5000  # not guarded


@pytest.mark.parametrize("kw, status, needle", [
    ({"files": {"file": ("a.png", b"\x89PNG")}}, 400, "unexpected file field `file`"),
    ({"data": {"image": "http://169.254.169.254/latest"}}, 400, "must be a file upload"),  # urlencoded
    ({"files": {"image": (None, "http://169.254.169.254/latest")}}, 400, "must be a file upload"),  # multipart
    ({"files": {"image": ("a.png", b"x")}, "data": {"k": "3"}}, 400, "unexpected form field `k`"),
    ({"files": {"image": ("a.png", b"x" * 2000)}}, 413, "over the limit"),
])
def test_bad_uploads_are_refused_with_the_reason(client, kw, status, needle):
    r = client.post("/classify", **kw)
    assert r.status_code == status and needle in r.json()["error"], r.text


def test_body_limit_holds_without_content_length(client):
    def chunks():
        for _ in range(5):
            yield b"z" * 400
    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
