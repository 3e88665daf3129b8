"""An ASGI middleware in front of every route: the request edges BentoML 1.4 gets wrong.

* Every request's body is bounded before anything is parsed or spooled to disk: the upload and
  tensor routes by the service's limit (413), every other route (/metadata, health, /v2 reads)
  by SMALL_BODY, since none of them takes a body.
* A JSON body is bounded by its element count and nesting depth before it is built in memory
  (a 60 MB list of numbers costs 10-25x its size as Python objects; 100,000 `[` overflow the stack).
* A multipart body is parsed strictly here: a missing boundary, a malformed body, an oversized or
  overlong part header are a 400 naming the problem, and each file name is replaced by
  `upload.EXT`, so a client's file name never reaches a path (BentoML names its temp files after it).
* An upload route takes a multipart form: a raw image body is a 415 saying so, and options in the
  query string (`/classify?top_k=2`, which BentoML ignores) a 400 saying they are form fields.
* A file sent under another form field (`curl -F file=@x.png`) is a 400 naming the right field;
  the image field must be a file (BentoML would fetch a text value as a URL); /predict takes JSON.
* Every 4xx/5xx answer, BentoML's, Starlette's and ours, is JSON `{"error": "..."}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
from python_multipart.multipart import parse_options_header

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SMALL_BODY = 64 << 10  # routes that take no body (or a small JSON one, as BentoML's client sends)
MAX_JSON_DEPTH = 32  # the deepest JSON a request needs: a (N, 3, H, W) tensor is 4 deep, OIP's header 5
MAX_PART_HEADER = 8 << 10  # bytes of one multipart part's headers
MAX_PART_HEADER_LINES = 16
MAX_ERROR_BODY = 1 << 20  # error answers are re-written as JSON up to this size
BINARY_HEADER = b"inference-header-content-length"  # the Open Inference Protocol's binary tensor extension


class RequestRefused(Exception):
    """A request the guard answers itself: the status and the reason."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class UploadGuard:
    """Bound the body of every request; for `limited` paths (fnmatch patterns) and `uploads` (path ->
    file field) up to `max_bytes`, with JSON bounded by `max_json_elements` (except a binary tensor
    body to a `binary` route, whose JSON header the route bounds) and multipart uploads checked and
    their file names replaced before the service parses them."""

    def __init__(self, app, limited: frozenset[str], uploads: Mapping[str, str], values: frozenset[str],
                 max_bytes: int, max_json_elements: int = 1 << 24, max_parts: int = 1024,
                 small_bytes: int = SMALL_BODY, binary: frozenset[str] = frozenset()):
        self.app = app
        self.binary = binary  # routes that bound the JSON header of a binary tensor body themselves
        self.limited = frozenset(limited) | set(uploads)
        self.uploads = dict(uploads)
        self.values = values  # non-file fields the upload routes accept, e.g. top_k
        self.max_bytes, self.small_bytes = max_bytes, small_bytes
        self.max_json_elements, self.max_parts = max_json_elements, max_parts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = json_errors(send)
        path = scope["path"]
        large = any(fnmatchcase(path, pattern) for pattern in self.limited)
        limit = self.max_bytes if large else self.small_bytes
        try:
            content_type = _only_header(scope, b"content-type")
            declared = _header(scope, b"content-length")
            if declared.isdigit() and int(declared) > limit:
                raise RequestRefused(self._too_big(limit), 413)
            data = await _read(receive, limit, self._too_big(limit))
            if data is None:
                return  # the client went away
            if large:
                post = scope.get("method") == "POST"  # another method gets the router's own 405
                if post:
                    self._check_query(path, scope.get("query_string", b""))
                # a JSON header, then raw tensors: the route bounds the header (serve/oip.py); the tensor
                # bytes are not JSON, and scanning them cost 4% of a /v2 request's CPU
                binary = bool(_header(scope, BINARY_HEADER)) and any(fnmatchcase(path, p) for p in self.binary)
                data = self._check(path, data, content_type, post, binary)
                scope = _with_length(scope, len(data))
        except RequestRefused as e:
            return await _error(send, e.status, str(e))
        await self.app(scope, _replay(data, receive), send)

    def _too_big(self, limit: int) -> str:
        if limit < self.max_bytes:
            return f"request body over the limit of {limit >> 10} KiB for this route (it takes no upload)"
        return f"request body over the limit of {limit / 2**20:g} MiB; send fewer or smaller images"

    def _check_query(self, path: str, query: bytes) -> None:
        """The upload routes take their options as form fields: a query string BentoML would ignore
        (`/classify?top_k=2` answered with the default five) is refused, saying where they go."""
        field = self.uploads.get(path)
        names = [name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)]
        if field is not None and names:
            how = " ".join(f"-F {n}=..." for n in names)
            raise RequestRefused(f"query parameter(s) {', '.join(names)}: this endpoint takes its options as form "
                                 f"fields (curl -F {field}=@digit.png {how})")

    def _check(self, path: str, data: bytes, content_type: bytes, post: bool = True, binary: bool = False) -> bytes:
        """The body to pass on (multipart re-written), or RequestRefused."""
        ctype, params = parse_options_header(content_type)
        field = self.uploads.get(path)
        if post and field is not None and data and ctype not in (b"multipart/form-data",
                                                                 b"application/x-www-form-urlencoded"):
            raise RequestRefused(f"send the image as a multipart form upload in the `{field}` field "
                                 f"(curl -F {field}=@digit.png), not a {ctype.decode('latin-1') or 'bare'} body", 415)
        if ctype == b"multipart/form-data":
            if not params.get(b"boundary"):
                raise RequestRefused("multipart/form-data without a boundary parameter; let the client "
                                     "build the request (curl -F image=@digit.png)")
            parts, data = parse_form(data, params[b"boundary"], self.max_parts)
            self._check_fields(((p.name, p.filename) for p in parts), field, "multipart")
        elif ctype == b"application/x-www-form-urlencoded":  # BentoML parses it as a form too
            names = ((name, None) for name, _ in parse_qsl(data.decode("latin-1"), keep_blank_values=True))
            self._check_fields(names, field, "form")
        elif not binary and (ctype.endswith(b"json") or (not ctype and data[:1] in (b"{", b"["))):
            problem = json_problem(data, self.max_json_elements)
            if problem:
                raise RequestRefused(problem[1], problem[0])
        return data

    def _check_fields(self, fields, field: str | None, kind: str) -> None:
        if field is None:  # /predict and the other JSON routes
            raise RequestRefused(f"this endpoint takes a JSON body, not a {kind} upload: send "
                                 '{"tensor": [[...]]} with Content-Type: application/json', 415)
        for name, filename in fields:
            if name == field and filename is None:
                raise RequestRefused(f"the `{field}` field must be a file upload (curl -F {field}=@digit.png), "
                                     "not a text value")
            if name != field and filename is not None:
                raise RequestRefused(f"unexpected file field `{name}`: send the image in the `{field}` field "
                                     f"(curl -F {field}=@digit.png)")
            if name != field and name not in self.values:
                raise RequestRefused(f"unexpected form field `{name}`; this endpoint takes `{field}` and "
                                     f"{', '.join(f'`{v}`' for v in sorted(self.values))}")


# --- JSON ------------------------------------------------------------------------------------

def json_problem(data: bytes, max_elements: int, max_depth: int = MAX_JSON_DEPTH) -> tuple[int, str] | None:
    """(status, why) when a JSON text is too costly to build: more than `max_elements` values (413), or
    nested deeper than `max_depth` (400); else None. Measured on the bytes, before parsing; brackets
    inside strings count as nesting (a request's strings, names and ids, hold none)."""
    elements = data.count(b",") + 1
    if elements > max_elements:
        return 413, (f"a JSON body of about {elements} elements, over the limit of {max_elements}; send fewer "
                     "rows per request, or binary tensors (/v2 with Inference-Header-Content-Length)")
    brackets = data.translate(None, _NOT_BRACKETS)
    if len(brackets) <= max_depth:  # fewer brackets cannot nest deeper (an OIP header, a small request)
        return None
    depth = _bracket_depth(brackets)
    if depth > max_depth:
        return 400, f"JSON nested {depth} deep, over the limit of {max_depth}"
    return None


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _bracket_depth(data: bytes, chunk: int = 1 << 20) -> int:
    """The deepest nesting of `data`, a JSON text's brackets alone (bytes.translate, at C speed): their
    running sum in chunks (a few MB of memory whatever the body's size)."""
    deepest, level = 0, 0
    for i in range(0, len(data), chunk):
        a = np.frombuffer(data, np.uint8, count=min(chunk, len(data) - i), offset=i)
        step = (((a == 91) | (a == 123)).astype(np.int32) - ((a == 93) | (a == 125)).astype(np.int32))
        if not step.any():
            continue
        running = np.cumsum(step) + level
        deepest, level = max(deepest, int(running.max())), int(running[-1])
    return deepest


# --- multipart -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None  # the client's, as sent; what is passed on is `upload.EXT`


_SAFE_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}$")


def parse_form(data: bytes, boundary: bytes, max_parts: int) -> tuple[list[Part], bytes]:
    """A multipart/form-data body, parsed strictly: (its parts, the body re-written with each file
    name replaced by `upload.EXT`). RequestRefused names what is malformed."""
    delim = b"--" + boundary
    if not data.startswith(delim):
        start = data.find(b"\r\n" + delim)
        if start < 0 or start > 1024:
            raise RequestRefused("malformed multipart body: it does not start with its boundary")
        data = data[start + 2:]
    segments = data[len(delim):].split(b"\r\n" + delim)
    raw: list[bytes] = []
    for seg in segments:
        if seg.startswith(b"--"):
            break  # the closing boundary; what follows is the epilogue
        if not seg.startswith(b"\r\n"):
            raise RequestRefused("malformed multipart body: a boundary not followed by a line break")
        raw.append(seg[2:])
        if len(raw) > max_parts:
            raise RequestRefused(f"more than {max_parts} parts in a multipart body")
    else:
        raise RequestRefused("malformed multipart body: it ends without its closing boundary")
    parts, rebuilt = [], []
    for body in raw:
        part, head = _part(body)
        parts.append(part)
        rebuilt.append(head + body[body.index(b"\r\n\r\n"):])
    crlf_delim = b"\r\n" + delim + b"\r\n"
    return parts, delim + b"\r\n" + crlf_delim.join(rebuilt) + b"\r\n" + delim + b"--\r\n"


def _part(body: bytes) -> tuple[Part, bytes]:
    """One part's field name and file name, and its headers with the file name replaced."""
    end = body.find(b"\r\n\r\n")
    if end < 0 or end > MAX_PART_HEADER:
        raise RequestRefused(f"malformed multipart body: a part's headers are over {MAX_PART_HEADER} bytes "
                             "or not ended by a blank line")
    lines = body[:end].split(b"\r\n")
    if len(lines) > MAX_PART_HEADER_LINES:
        raise RequestRefused(f"a multipart part with {len(lines)} header lines, over {MAX_PART_HEADER_LINES}")
    out, found = [], None
    for line in lines:
        key, colon, value = line.partition(b":")
        if not colon:
            raise RequestRefused("malformed multipart body: a part header line without a colon")
        if key.strip().lower() != b"content-disposition":
            out.append(line)
            continue
        kind, params = parse_options_header(value)
        name = params.get(b"name")
        if found is not None or kind != b"form-data" or not name or re.search(rb'["\r\n\\]', name):
            raise RequestRefused("malformed multipart body: each part needs one "
                                 'Content-Disposition: form-data; name="..."')
        filename = params.get(b"filename")
        found = Part(name.decode("utf-8", "replace"),
                     None if filename is None else filename.decode("utf-8", "replace"))
        safe = b""
        if filename is not None:
            ext = _SAFE_EXT.search(filename.decode("utf-8", "replace")[-16:])
            safe = b'; filename="upload' + (ext.group(0).lower().encode() if ext else b"") + b'"'
        out.append(b'Content-Disposition: form-data; name="' + name + b'"' + safe)
    if found is None:
        raise RequestRefused("malformed multipart body: a part without Content-Disposition")
    return found, b"\r\n".join(out)


# --- every error as JSON -------------------------------------------------------------------------

def json_errors(send: Send) -> Send:
    """`send`, with every 4xx/5xx answer turned into JSON {"error": ...} where it is not already one
    (Starlette's plain-text 404/405, BentoML's validation lists); other headers (Allow) are kept."""
    held: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] >= 400:
            held = message
            return
        if held is None or message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body") and sum(map(len, chunks)) < MAX_ERROR_BODY:
            return
        start, body = held, b"".join(chunks)
        held = None
        await _send_json_error(send, start, body, more=message.get("more_body", False))
    return wrapped


async def _send_json_error(send: Send, start: Message, body: bytes, more: bool) -> None:
    status = start["status"]
    try:
        doc = json.loads(body) if body else None
    except (UnicodeDecodeError, ValueError):
        doc = None
    if more or (isinstance(doc, dict) and isinstance(doc.get("error"), str)):
        await send(start)  # already ours (or too long to re-write): as it came
        return await send({"type": "http.response.body", "body": body, "more_body": more})
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = _detail(doc) if doc is not None else " ".join(body.decode("utf-8", "replace").split())[:500]
    message = reason if not detail or detail == reason else f"{reason}: {detail}"
    keep = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-type", b"content-length")]
    await _error(send, status, message, keep)


def _detail(doc: Any) -> str:
    """A one-line summary of a JSON error body that is not ours (BentoML's, pydantic's)."""
    if isinstance(doc, list):
        return "; ".join(_detail(d) for d in doc[:5])
    if isinstance(doc, dict):
        msg = doc.get("msg") or doc.get("detail") or doc.get("message") or doc.get("error")
        loc = doc.get("loc")
        text = _detail(msg) if msg is not None else json.dumps(doc)[:200]
        return f"{'.'.join(map(str, loc))}: {text}" if isinstance(loc, list) and loc else text
    return str(doc)[:500]


# --- ASGI plumbing -------------------------------------------------------------------------------

async def _read(receive: Receive, limit: int, too_big: str) -> bytes | None:
    body, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body.append(message.get("body", b""))
        size += len(body[-1])
        if size > limit:
            raise RequestRefused(too_big, 413)
        more = message.get("more_body", False)
    return b"".join(body)


def _only_header(scope: Scope, name: bytes) -> bytes:
    values = [v for k, v in scope.get("headers", []) if k.lower() == name]
    if len(values) > 1:
        raise RequestRefused(f"{len(values)} {name.decode().title()} headers; send one")
    return values[0] if values else b""


def _with_length(scope: Scope, length: int) -> Scope:
    """`scope` with Content-Length saying the (possibly re-written) body's length."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


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


async def _error(send: Send, status: int, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [*(headers or []), (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
