"""The API key (CADT_API_KEY): required on every GraphQL request when it is set.

- HTTP (`/graphql`, `/graphql/stream`): header `x-api-key`; missing or wrong gives HTTP 401 with
  a GraphQL-shaped JSON body whose error carries `extensions.code = UNAUTHENTICATED`.
  The GraphiQL page itself (a browser GET asking for HTML) is served without a key: it holds no
  data, and a browser cannot add headers to a page load; its requests need the key.
- WebSocket (graphql-transport-ws): `{"apiKey": "..."}` in the `connection_init` payload;
  otherwise the socket is closed with 4403 (`GatewayGraphQL.on_ws_connect`).
- `/healthz` and `/readyz` stay open for orchestrators' probes.

Keys are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Collection

from pydantic import SecretStr
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

API_KEY_HEADER = "x-api-key"
#: The key's name in the graphql-transport-ws connection_init payload.
API_KEY_PARAM = "apiKey"

UNAUTHENTICATED_MESSAGE = "Missing or invalid API key: send it in the x-api-key header."


def api_key_matches(expected: SecretStr | None, given: object) -> bool:
    """True when no key is configured, or `given` equals it (constant-time comparison)."""
    if expected is None:
        return True
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"),
        expected.get_secret_value().encode("utf-8", "surrogateescape"),
    )


def unauthenticated_body(message: str = UNAUTHENTICATED_MESSAGE) -> bytes:
    """The JSON body of a 401: a GraphQL response with one UNAUTHENTICATED error."""
    body = {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return json.dumps(body, separators=(",", ":")).encode()


def _is_ide_page(scope: Scope) -> bool:
    if scope["method"] != "GET":
        return False
    if "query" in QueryParams(scope.get("query_string", b"").decode("latin-1")):
        return False
    accept = Headers(scope=scope).get("accept", "")
    return "text/html" in accept


class ApiKeyMiddleware:
    """Refuse HTTP requests to the GraphQL paths without the right `x-api-key` (HTTP 401)."""

    def __init__(self, app: ASGIApp, *, api_key: SecretStr | None, paths: Collection[str]) -> None:
        self.app = app
        self.api_key = api_key
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.api_key is None
            or scope["type"] != "http"
            or scope["path"].rstrip("/") not in self.paths
            or scope["method"] == "OPTIONS"  # CORS preflights carry no credentials
            or _is_ide_page(scope)
            or api_key_matches(self.api_key, Headers(scope=scope).get(API_KEY_HEADER))
        ):
            await self.app(scope, receive, send)
            return
        body = unauthenticated_body()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
