"""Per-request context: the request id (X-Request-ID in and out) and HTTP/WebSocket metrics.

The outermost middleware: every log record of a request carries its id (logs.ContextFilter),
every response names it in `X-Request-ID`, and `cadt_http_requests_total` counts responses by
route. A client's X-Request-ID is kept when it is a short token ([A-Za-z0-9._:-], at most 128
characters), so a proxy's or caller's id follows the request through the logs; anything else is
replaced by a generated one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadt_gateway import metrics
from cadt_gateway.logs import REQUEST_ID

REQUEST_ID_HEADER = "x-request-id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a sane token, else a new one."""
    given = Headers(scope=scope).get(REQUEST_ID_HEADER)
    if given is not None and _VALID.match(given):
        return given
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Set the request id for the request's context, echo it, and count the response."""

    def __init__(self, app: ASGIApp, *, known_paths: Collection[str]) -> None:
        self.app = app
        self.known_paths = frozenset(known_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = REQUEST_ID.set(request_id)
        try:
            if scope["type"] == "websocket":
                metrics.WEBSOCKETS.inc()
                try:
                    await self.app(scope, receive, send)
                finally:
                    metrics.WEBSOCKETS.dec()
                return
            await self._http(scope, receive, send, request_id)
        finally:
            REQUEST_ID.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        path = scope["path"].rstrip("/") or "/"
        label = path if path in self.known_paths else "other"
        status = 500  # an exception before the response started ends as Starlette's 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.HTTP_REQUESTS.labels(label, scope["method"], str(status)).inc()
