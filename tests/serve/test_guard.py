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


# --- every route bounded, JSON bounded before parsing, multipart parsed strictly, errors as JSON ---

@pytest.fixture(scope="module")
def strict():
    async def form(request: Request) -> JSONResponse:
        got = await request.form()
        return JSONResponse({k: getattr(v, "filename", v) for k, v in got.items()})
    app = Starlette(routes=[Route("/classify", form, methods=["POST"]), Route("/predict", echo, methods=["POST"]),
                            Route("/metadata", echo, methods=["GET", "POST"])])
    app.add_middleware(UploadGuard, limited=frozenset({"/predict"}), uploads={"/classify": "image"},
                       values=frozenset({"top_k"}), max_bytes=10_000, max_json_elements=100, small_bytes=200)
    return TestClient(app)


def _multipart(body: bytes, boundary: str = "b0und") -> dict:
    return {"content": body, "headers": {"content-type": f"multipart/form-data; boundary={boundary}"}}


def _part(head: bytes, data: bytes = b"x") -> bytes:
    return b"--b0und\r\n" + head + b"\r\n\r\n" + data + b"\r\n"


GOOD_HEAD = b'Content-Disposition: form-data; name="image"; filename="a.png"'


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("path, kw, status, needle", [
    ("/metadata", {"content": b"x" * 300}, 413, "for this route"),  # /metadata takes no body
    ("/predict", {"content": b"[" * 40 + b"1" + b"]" * 40, "headers": JSON}, 400, "nested 40 deep"),
    ("/predict", {"json": {"tensor": list(range(500))}}, 413, "over the limit of 100"),
    ("/classify", {"content": b"x", "headers": {"content-type": "multipart/form-data"}}, 400, "without a boundary"),
    ("/classify", _multipart(b"garbage, no boundary at all"), 400, "does not start with its boundary"),
    ("/classify", _multipart(_part(GOOD_HEAD)), 400, "ends without its closing boundary"),
    ("/classify", _multipart(_part(GOOD_HEAD + b"\r\nX: y" * 40) + b"--b0und--\r\n"), 400, "header lines"),
    ("/classify", _multipart(_part(b"X-Big: " + b"a" * 9000 + b"\r\n" + GOOD_HEAD) + b"--b0und--\r\n"), 400,
     "headers are over"),
    ("/classify", _multipart(_part(b"Content-Type: image/png") + b"--b0und--\r\n"), 400,
     "without Content-Disposition"),
    ("/predict", {"files": {"tensor": ("t.json", b"\xff\xfe")}}, 415, "takes a JSON body"),  # a file to /predict
])
def test_costly_or_malformed_requests_are_4xx_json(strict, path, kw, status, needle):
    r = strict.post(path, **kw)
    assert r.status_code == status and needle in r.json()["error"], (r.status_code, r.text)


def test_two_content_types_are_refused(strict):
    r = strict.post("/predict", content=b"{}", headers=[("content-type", "application/json"),
                                                        ("content-type", "text/plain")])
    assert r.status_code == 400 and "2 Content-Type headers" in r.json()["error"]


def test_a_client_file_name_never_reaches_the_service(strict):
    name = "../" * 5 + "a" * 300 + ".PNG"
    body = _part(b'Content-Disposition: form-data; name="image"; filename="' + name.encode() + b'"', b"\x89PNG") \
        + b"--b0und--\r\n"
    r = strict.post("/classify", **_multipart(body))
    assert r.status_code == 200 and r.json() == {"image": "upload.png"}, r.text


def test_starlettes_own_errors_become_json(strict):
    r = strict.get("/nowhere")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = strict.delete("/predict")
    assert r.status_code == 405 and r.json()["error"] == "Method Not Allowed" and "POST" in r.headers["allow"]
