"""`application/graphql-response+json` (GraphQL over HTTP), for clients that ask for it.

Strawberry answers every request with `application/json` and status 200 for a document that
does not parse, does not validate or whose variables do not coerce (the legacy media type's
rules). A client whose Accept header names `application/graphql-response+json` asked for the
newer rules instead, and gets them here, outside the view:

- the answer's content type is `application/graphql-response+json`;
- a request error (the answer has no data, or data null and only errors without a `path`,
  which is what parse, validation and variable coercion failures look like; execution errors
  always carry the path of their field) is status 400, without the `data` entry;
- everything else is untouched (a field error with partial or null data stays 200).

Clients that accept only `application/json` (or anything, `*/*`) see no change. Streamed
answers (SSE, multipart) and non-JSON bodies (GraphiQL) pass through as they are. An
automatic-persisted-query miss keeps its 200 (Apollo's link expects it in the data path).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
#: Error codes that are answers of the protocol, not request errors (status stays 200).
_PROTOCOL_ANSWERS = frozenset({"PERSISTED_QUERY_NOT_FOUND"})


def wants_graphql_response_json(scope: Scope) -> bool:
    """The request's Accept header names application/graphql-response+json (q > 0)."""
    accept = Headers(scope=scope).get("accept", "")
    for part in accept.split(","):
        media_type, *params = (piece.strip() for piece in part.split(";"))
        if media_type.lower() != GRAPHQL_RESPONSE_JSON:
            continue
        quality = next((p.split("=", 1)[1] for p in params if p.startswith("q=")), "1")
        try:
            return float(quality) > 0
        except ValueError:
            return True
    return False


def _is_request_error(answer: Any) -> bool:
    if not isinstance(answer, dict) or not answer.get("errors"):
        return False
    if answer.get("data") is not None:
        return False
    errors = answer["errors"]
    if not isinstance(errors, list):
        return False
    for error in errors:
        if not isinstance(error, dict) or error.get("path"):
            return False  # an execution error: data null is the result of running it
        extensions = error.get("extensions")
        if isinstance(extensions, dict) and extensions.get("code") in _PROTOCOL_ANSWERS:
            return False
    return True


class GraphQLResponseMediaType:
    """ASGI middleware applying the graphql-response+json rules on the GraphQL HTTP paths."""

    def __init__(self, app: ASGIApp, *, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"].rstrip("/") not in self.paths
            or not wants_graphql_response_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []
        passing_through = False

        async def capture(message: Message) -> None:
            nonlocal start, passing_through
            if passing_through:
                await send(message)
                return
            if message["type"] == "http.response.start":
                media_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if not media_type.startswith("application/json"):
                    passing_through = True  # a stream, a page, anything else
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._answer(start, b"".join(chunks), send)

        await self.app(scope, receive, capture)

    @staticmethod
    async def _answer(start: Message, body: bytes, send: Send) -> None:
        status = start["status"]
        try:
            answer = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            answer = None
        if status == 200 and isinstance(answer, dict) and _is_request_error(answer):
            status = 400
            body = orjson.dumps({"errors": answer["errors"]})
        headers = MutableHeaders(raw=list(start.get("headers", [])))
        headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
        headers["content-length"] = str(len(body))
        await send({**start, "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body, "more_body": False})
