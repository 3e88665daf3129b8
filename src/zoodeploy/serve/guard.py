"""An ASGI middleware in front of the upload routes: the request edges BentoML 1.4 gets wrong.

* A body over the size limit is a 413, before anything is parsed or spooled to disk.
* A file sent under another form field (`curl -F file=@x.png`) is a 400 naming the right
  field; BentoML would JSON-decode the file's bytes as a form value and answer 500.
* The image field must be a file: BentoML would fetch a plain-text value as a URL (a request
  to an address the client chose), or answer 500 when it is none.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from python_multipart.multipart import parse_options_header

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class UploadGuard:
    """Limit the body of POSTs to `limited` paths; check multipart uploads to `uploads` (path -> file
    field) before the service parses them."""

    def __init__(self, app, limited: frozenset[str], uploads: Mapping[str, str], values: frozenset[str],
                 max_bytes: int):
        self.app = app
        self.limited = limited | set(uploads)
        self.uploads = dict(uploads)
        self.values = values  # non-file fields the upload routes accept, e.g. top_k
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope["path"] not in self.limited:
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _error(send, 413, self._too_big())
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.append(message.get("body", b""))
            size += len(body[-1])
            if size > self.max_bytes:
                return await _error(send, 413, self._too_big())
            more = message.get("more_body", False)
        data = b"".join(body)
        if scope["path"] in self.uploads:
            problem = self._check_form(data, _header(scope, b"content-type"), self.uploads[scope["path"]])
            if problem:
                return await _error(send, 400, problem)
        await self.app(scope, _replay(data, receive), send)

    def _too_big(self) -> str:
        return f"request body over the limit of {self.max_bytes / 2**20:g} MiB; send fewer or smaller images"

    def _check_form(self, data: bytes, content_type: bytes, field: str) -> str | None:
        ctype, params = parse_options_header(content_type)
        if ctype == b"multipart/form-data" and params.get(b"boundary"):
            fields = _parts(data, params[b"boundary"])
        elif ctype == b"application/x-www-form-urlencoded":  # BentoML parses it as a form too
            fields = ((name, None) for name, _ in parse_qsl(data.decode("latin-1"), keep_blank_values=True))
        else:
            return None  # JSON and the rest: BentoML validates those itself
        for name, filename in fields:
            if name == field and filename is None:
                return (f"the `{field}` field must be a file upload (curl -F {field}=@digit.png), "
                        "not a text value")
            if name != field and filename is not None:
                return f"unexpected file field `{name}`: send the image in the `{field}` field " \
                       f"(curl -F {field}=@digit.png)"
            if name != field and name not in self.values:
                return f"unexpected form field `{name}`; this endpoint takes `{field}` and " \
                       f"{', '.join(f'`{v}`' for v in sorted(self.values))}"
        return None


def _parts(data: bytes, boundary: bytes):
    """(field name, filename or None) of each part of a multipart/form-data body."""
    for part in data.split(b"--" + boundary)[1:]:
        head = part.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-disposition:"):
                _, params = parse_options_header(line.split(b":", 1)[1])
                name = params.get(b"name", b"").decode("utf-8", "replace")
                filename = params.get(b"filename")
                yield name, None if filename is None else filename.decode("utf-8", "replace")


def _header(scope: Scope, name: bytes) -> bytes:
    return next((v for k, v in scope.get("headers", []) if k.lower() == name), b"")


def _replay(data: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the client's disconnect
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}
    return replay


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
