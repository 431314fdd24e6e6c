"""The per-client rate limit: 429 JSON with retryAfter past the limit, health routes exempt."""

from __future__ import annotations

from typing import Any

from cadt_gateway.ratelimit import client_address, client_id, parse_networks
from tests.conftest import register_secret

QUERY = {"query": "{ __typename }"}


async def test_tiny_limit_gives_429_with_retry_after(start_node: Any, node_settings: Any) -> None:
    node = await start_node(node_settings(rate_limit_requests=3, rate_limit_window_seconds=600))
    for _ in range(3):
        assert (await node.http.post("/graphql", json=QUERY)).status_code == 200
    response = await node.http.post("/graphql", json=QUERY)
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/json")
    retry_after = int(response.headers["retry-after"])
    assert 0 < retry_after <= 600
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry_after}
    # Health, readiness and metrics stay reachable.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await node.http.get(path)).status_code in (200, 503)


async def test_clients_with_the_key_are_counted_apart(start_node: Any, node_settings: Any) -> None:
    key = register_secret("cadt-rate-key-Hh4Jr7Ty2")
    node = await start_node(node_settings(api_key=key, rate_limit_requests=1))
    assert (await node.http.post("/graphql", json=QUERY, headers={"x-api-key": key})).is_success
    # Without (or with a wrong) key the client is its address: a bucket of its own.
    assert (await node.http.post("/graphql", json=QUERY)).status_code == 401
    assert (await node.http.post("/graphql", json=QUERY)).status_code == 429
    again = await node.http.post("/graphql", json=QUERY, headers={"x-api-key": key})
    assert again.status_code == 429
    stored = [key_ async for key_ in node.services.redis.scan_iter(match="cadt:ratelimit:*")]
    assert all(key.encode() not in name for name in stored)  # the key is hashed


async def test_zero_turns_it_off(start_node: Any, node_settings: Any) -> None:
    node = await start_node(
        node_settings(env="production", api_key="k" * 16, rate_limit_requests=0)
    )
    for _ in range(5):
        response = await node.http.post("/graphql", json=QUERY, headers={"x-api-key": "k" * 16})
        assert response.status_code == 200


def _scope(peer: str, forwarded: str | None = None, key: str | None = None) -> dict[str, Any]:
    headers = []
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    if key is not None:
        headers.append((b"x-api-key", key.encode()))
    return {"type": "http", "client": (peer, 1234), "headers": headers}


def test_client_address_behind_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8", "192.168.1.1"])
    # Untrusted peers cannot choose their identity with X-Forwarded-For.
    assert client_address(_scope("203.0.113.9", "1.2.3.4"), trusted) == "203.0.113.9"
    # A trusted proxy names the client: the last address that is not a trusted proxy.
    scope = _scope("10.1.2.3", "198.51.100.7, 203.0.113.5, 192.168.1.1")
    assert client_address(scope, trusted) == "203.0.113.5"
    assert client_address(_scope("10.1.2.3"), trusted) == "10.1.2.3"
    assert client_address(_scope("10.1.2.3", "1.2.3.4"), []) == "10.1.2.3"


def test_client_id_uses_the_key_hash_only_for_the_right_key() -> None:
    from pydantic import SecretStr

    key = SecretStr("right-key-Pp2")
    assert client_id(_scope("1.2.3.4", key="right-key-Pp2"), key, []).startswith("key:")
    assert "right-key" not in client_id(_scope("1.2.3.4", key="right-key-Pp2"), key, [])
    assert client_id(_scope("1.2.3.4", key="guess"), key, []) == "ip:1.2.3.4"


async def test_websocket_handshakes_count_and_are_refused_over_the_limit(
    serve_node: Any, node_settings: Any
) -> None:
    import websockets

    from tests.lock.conftest import ws_session

    live = await serve_node(node_settings(rate_limit_requests=1))
    async with ws_session(live.ws_url) as session:
        await session.init()
    try:
        async with ws_session(live.ws_url):
            raise AssertionError("the second handshake was accepted")
    except websockets.exceptions.InvalidStatus as refused:
        assert refused.response.status_code == 403
