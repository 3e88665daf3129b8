"""Slow and idle connections closed, and connections per worker capped: what uvicorn does not do
by itself under BentoML 1.4.

uvicorn (BentoML's HTTP server) closes a keep-alive connection `timeout_keep_alive` seconds after
its last response (5 s; `bentoml serve --timeout-keep-alive`), but it has no timeout at all for a
connection that sends nothing, or sends its request headers a byte at a time: neither of its
protocols (httptools, h11) has a header read timeout, and BentoML passes it no
`limit_concurrency`. Measured (issue #33): 1,000 connections sending headers byte by byte were all
still open after 60 s. So the HTTP protocol uvicorn runs is replaced by one that closes a
connection whose request headers have not all arrived `header_timeout` seconds after it opened
(or after the first byte of its next request), and that answers 503 (uvicorn's own
`limit_concurrency`) once a worker holds `max_connections` connections. A request whose headers
are in is bounded by BentoML's `traffic.timeout` instead. The same class answers a request uvicorn's
parser cannot read (a broken request line, an invalid header) with the service's one-line JSON error
instead of uvicorn's plain text: that 400 is sent before any ASGI code runs.
"""

from __future__ import annotations

import asyncio
import json


class HeaderDeadline:
    """Mixed in before one of uvicorn's HTTP protocols (they share `cycle`, `transport`, `loop`): the
    header deadline, the connection cap, and the parser's 400 as JSON."""

    header_timeout: float = 10.0
    max_connections: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        if self.limit_concurrency is None:  # the server's own setting, if it ever passes one, wins
            self.limit_concurrency = self.max_connections

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._between_requests():
            self._disarm()  # headers complete: the request is the application's now
        elif self._deadline is None:
            self._arm()  # the first bytes of the next request: the clock starts

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what its parser rejects, as `{"error": ...}`; the connection closes."""
        body = json.dumps({"error": f"malformed HTTP request ({msg}); send HTTP/1.1 with valid headers"}).encode()
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        self.transport.close()

    def _expired(self) -> None:
        self._deadline = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()


def guarded(protocol: type, header_timeout: float, max_connections: int | None) -> type:
    """`protocol` (a uvicorn HTTP protocol class) with the header deadline and the connection cap."""
    return type(f"Guarded{protocol.__name__}", (HeaderDeadline, protocol),
                {"header_timeout": float(header_timeout), "max_connections": max_connections})
