"""The API key, the TLS private keys and the database password never reach logs, errors or
GraphQL responses. Each secret is registered first, so the suite-wide log check
(tests/conftest.py no_secrets_in_logs) fails the run if any record of these tests contains it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cadt_gateway.app import open_node
from tests.conftest import register_secret


def _private_key_lines(folder: Path) -> list[str]:
    """A distinctive line of every private key the node's client certificates use."""
    lines = []
    for path in sorted(folder.rglob("*.key")):
        body = [line for line in path.read_text().splitlines() if not line.startswith("-----")]
        lines.extend(line for line in body[1:3] if len(line) > 40)
    return lines


async def test_api_key_and_tls_keys_stay_out_of_responses_and_logs(
    start_node: Any,
    node_settings: Any,
    simulator: Any,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tls_lines = [register_secret(line) for line in _private_key_lines(simulator.ssl_folder(0))]
    assert tls_lines, "the simulator's client certificates have private keys"
    secrets = [api_key, *tls_lines]
    caplog.set_level(logging.DEBUG)
    node = await start_node(node_settings(env="production", api_key=api_key, log_level="debug"))
    headers = {"x-api-key": api_key}
    responses = [
        await node.http.post("/graphql", json={"query": "{ health { ok wallet { detail } } }"}),
        await node.http.post(
            "/graphql", json={"query": "{ health { ok datalayer { detail } } }"}, headers=headers
        ),
        await node.http.post("/graphql", json={"query": "{ nope }"}, headers=headers),
        await node.http.get("/readyz"),
        await node.http.get("/metrics"),
        await node.http.post(
            "/graphql", content=b"{", headers={"content-type": "application/json"}
        ),
    ]
    # An unexpected error: masked in production (its details are only in the log).
    import resolvers.health

    async def leaky(info: Any) -> Any:
        raise RuntimeError("upstream refused the client certificate")

    monkeypatch.setattr(resolvers.health, "health", leaky)
    responses.append(
        await node.http.post("/graphql", json={"query": "{ health { ok } }"}, headers=headers)
    )
    for response in responses:
        for secret in secrets:
            assert secret not in response.text
    masked = responses[-1].json()["errors"][0]
    assert masked["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "client certificate" not in masked["message"]
    settings_text = repr(node.settings) + str(node.settings)
    for secret in secrets:
        assert secret not in settings_text
    # the DEBUG records of this test too (the suite-wide check reads INFO and above)
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    for secret in secrets:
        assert secret not in caplog.text


async def test_database_password_stays_out_of_start_up_errors(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    password = register_secret("db-pass-Wq9Kc3Lx7")
    settings = make_settings(
        database_url=f"postgresql+asyncpg://cadt:{password}@127.0.0.1:1/cadt",
        redis_url="redis://127.0.0.1:6379/15",
        datalayer_url="https://127.0.0.1:1",
        wallet_url="https://127.0.0.1:1",
        api_key=SecretStr(register_secret("cadt-test-api-key-Nn5Vr8Bb")),
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as caught:
        async with open_node(settings, run_worker=False):
            pass
    assert password not in str(caught.value)
    assert password not in repr(caught.value)
    assert password not in caplog.text
