"""Per-client rate limit of GraphQL requests, shared by every replica through Redis.

A fixed window per client: the first request of a client starts a window of
CADT_RATE_LIMIT_WINDOW_SECONDS in which CADT_RATE_LIMIT_REQUESTS requests pass (CADT's default
is 1000 per 15 minutes, ours in production; 0 turns it off). One Lua call counts and reads the
window, so replicas never race. Over the limit: HTTP 429, `Retry-After` and a JSON error with
`extensions.retryAfter` (seconds). Counted: HTTP requests to the GraphQL paths and WebSocket
handshakes on /graphql; health, readiness and metrics routes are exempt.

The client is the API key when the request carries the right one (its SHA-256, never the key),
else the peer address; behind proxies listed in CADT_TRUSTED_PROXIES, the last X-Forwarded-For
address that is not one of them. If Redis does not answer the request passes (logged): the
limit protects the node, it must not take it down.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from collections.abc import Collection, Sequence

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cadt_gateway.auth import API_KEY_HEADER, api_key_matches

logger = logging.getLogger(__name__)

KEY_PREFIX = "cadt:ratelimit:"

#: INCR the client's counter; the first request of a window sets its expiry. -> {count, ttl ms}
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[str]) -> list[Network]:
    """Trusted proxies as networks (a bare address is a /32 or /128)."""
    return [ipaddress.ip_network(value, strict=False) for value in values]


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The peer, or behind trusted proxies the nearest untrusted X-Forwarded-For address."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted or not _trusted(peer, trusted):
        return str(peer)
    forwarded = Headers(scope=scope).get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else str(peer)


def client_id(scope: Scope, api_key: SecretStr | None, trusted: Sequence[Network]) -> str:
    """`key:<sha256 prefix>` for a caller with the right API key, else `ip:<address>`."""
    given = Headers(scope=scope).get(API_KEY_HEADER)
    if api_key is not None and given and api_key_matches(api_key, given):
        return "key:" + hashlib.sha256(given.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return "ip:" + client_address(scope, trusted)


class RateLimitMiddleware:
    """Count each client's GraphQL requests in Redis; 429 past the limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        requests: int,
        window_seconds: float,
        api_key: SecretStr | None,
        trusted_proxies: Sequence[str],
        paths: Collection[str],
    ) -> None:
        self.app = app
        self.requests = requests
        self.window_ms = max(1, int(window_seconds * 1000))
        self.api_key = api_key
        self.trusted = parse_networks(trusted_proxies)
        self.paths = frozenset(paths)
        self._redis_failing = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.requests <= 0
            or scope["type"] not in ("http", "websocket")
            or scope["path"].rstrip("/") not in self.paths
            or (scope["type"] == "http" and scope["method"] == "OPTIONS")
        ):
            await self.app(scope, receive, send)
            return
        retry_after = await self._over_limit(scope)
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # Refusing before accepting answers the handshake with HTTP 403.
            await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})
            return
        message = f"Too many requests; retry after {retry_after} s."
        response = JSONResponse(
            {
                "errors": [
                    {
                        "message": message,
                        "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after},
                    }
                ]
            },
            status_code=429,
            headers={"retry-after": str(retry_after)},
        )
        await response(scope, receive, send)

    async def _over_limit(self, scope: Scope) -> int | None:
        """Seconds until the client's window ends when it is over the limit, else None."""
        services = (scope.get("state") or {}).get("services")
        if services is None:
            return None
        key = KEY_PREFIX + client_id(scope, self.api_key, self.trusted)
        try:
            count, ttl_ms = await services.redis.eval(_COUNT_SCRIPT, 1, key, self.window_ms)
        except Exception as error:  # Redis down: let requests through, say so once
            if not self._redis_failing:
                logger.warning("rate limit not enforced, Redis failed: %s", type(error).__name__)
                self._redis_failing = True
            return None
        self._redis_failing = False
        if int(count) <= self.requests:
            return None
        return max(1, math.ceil(int(ttl_ms) / 1000))
