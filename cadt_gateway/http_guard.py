"""GraphQL over HTTP, strictly: JSON errors for malformed requests, methods, media types, sizes.

Every refusal is a JSON body `{"errors": [{"message": ..., "extensions": {"code": ...}}]}`:

- 400: invalid JSON, an empty body, a body that is not an object, `query` not a string,
  `variables` or `extensions` not an object, `operationName` not a string, an unknown operation
  name, no query;
- 405 with `Allow: POST`: a mutation (or subscription) over GET; 405: other methods;
- 415: a POST whose Content-Type is not `application/json` (text/plain and the form types are
  what a cross-site form can send without a CORS preflight: CSRF);
- 413: a body larger than CADT_MAX_BODY_BYTES (by Content-Length, or counted while reading).

RequestGuard (ASGI middleware) refuses by method, media type and size before the body is read;
JsonHTTPErrors (a mixin of the GraphQL view) turns strawberry's plain-text 400s into JSON.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from cross_web import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError

#: Request media types the GraphQL endpoints read.
JSON_MEDIA_TYPES = frozenset({"application/json", "application/graphql-response+json"})


def error_response(
    status: int, message: str, code: str, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A GraphQL-shaped JSON error response."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


class _BodyTooLarge(Exception):
    """The body grew past the cap while the app read it."""


class RequestGuard:
    """Refuse bad methods, non-JSON POSTs and oversized bodies on the GraphQL HTTP paths."""

    def __init__(self, app: ASGIApp, *, paths: Collection[str], max_body_bytes: int) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") not in self.paths:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._capped(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        method = scope["method"]
        if method not in ("GET", "POST"):
            return error_response(
                405,
                "GraphQL is served over GET (queries) and POST.",
                "METHOD_NOT_ALLOWED",
                headers={"allow": "GET, POST"},
            )
        if method != "POST":
            return None
        headers = Headers(scope=scope)
        media_type, _ = parse_content_type(headers.get("content-type", ""))
        if media_type not in JSON_MEDIA_TYPES:
            return error_response(
                415,
                "POST a GraphQL request as JSON with Content-Type: application/json.",
                "UNSUPPORTED_MEDIA_TYPE",
            )
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return self._too_large()
        return None

    def _too_large(self) -> Response:
        return error_response(
            413,
            f"The request body is larger than {self.max_body_bytes} bytes.",
            "PAYLOAD_TOO_LARGE",
        )

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a receive that stops past the cap (chunked bodies have no length)."""
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large()(scope, receive, send)


class JsonHTTPErrors:
    """GraphQL view mixin: strawberry's HTTPException as a JSON error, mutations over GET 405."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # type: ignore[misc]
            return
        request = Request(scope=scope, receive=receive)
        try:
            response: Response = await self.run(request)  # type: ignore[attr-defined]
        except HTTPException as error:
            response = self.http_error_response(request, error)
        await response(scope, receive, send)

    def http_error_response(self, request: Request, error: HTTPException) -> Response:
        """The JSON response for a refused request."""
        if isinstance(error.__cause__, InvalidOperationTypeError) and request.method == "GET":
            return error_response(
                405,
                f"{error.reason} Send it as a POST request.",
                "METHOD_NOT_ALLOWED",
                headers={"allow": "POST"},
            )
        status = error.status_code
        return error_response(status, error.reason, _CODES.get(status, "BAD_REQUEST"))

    def parse_json(self, data: str | bytes) -> Any:
        """JSON that must be an object (or a list: a batch, refused as such by strawberry)."""
        value = super().parse_json(data)  # type: ignore[misc]
        if not isinstance(value, (dict, list)):
            raise HTTPException(400, "Expected a JSON object.")
        return value

    async def parse_http_body(self, request: Any) -> Any:
        """strawberry's parsing, plus: `operationName` must be a string or null."""
        data = await super().parse_http_body(request)  # type: ignore[misc]
        if isinstance(data, GraphQLRequestData) and not isinstance(
            data.operation_name, (str, type(None))
        ):
            raise HTTPException(
                400, "The GraphQL operation's `operationName` must be a string or null."
            )
        return data
