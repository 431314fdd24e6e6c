"""CADT_ENV=production: API key required at start, unexpected errors masked with an error id
that the log repeats with the details, expected errors untouched, secrets never echoed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import resolvers.health
from cadt_gateway.settings import SettingsError, load_settings
from tests.conftest import register_secret

INTERNAL_DETAIL = "internal detail q8Rt5 that clients must not see"


def test_production_refuses_to_start_without_an_api_key(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CADT_") or key.startswith("CADT_TEST")
    }
    env.update({"CADT_ENV": "production", "CADT_DATA_DIR": str(tmp_path / "data")})
    result = subprocess.run(
        [sys.executable, "-m", "cadt_gateway.cli", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "CADT_API_KEY is required" in lines[0]
    assert "CADT_ALLOW_NO_API_KEY" in lines[0]
    assert "Traceback" not in result.stderr


def test_production_without_a_key_only_when_explicitly_allowed() -> None:
    with pytest.raises(SettingsError, match="CADT_API_KEY is required"):
        load_settings(env="production", _env_file=None)
    settings = load_settings(env="production", allow_no_api_key=True, _env_file=None)
    assert settings.api_key is None
    assert settings.masks_errors and not settings.introspection_enabled
    assert not settings.graphiql_enabled
    assert settings.effective_rate_limit_requests == 1000


def test_database_password_is_not_echoed_by_a_bad_setting() -> None:
    password = register_secret("pw-Vb3nT8sQ1x")
    with pytest.raises(SettingsError) as caught:
        load_settings(database_url=f"mysql://cadt:{password}@db/cadt", _env_file=None)
    assert password not in str(caught.value)
    settings = load_settings(
        database_url=f"postgresql+asyncpg://cadt:{password}@db/cadt", _env_file=None
    )
    assert password not in repr(settings)


@pytest.fixture
def failing_health(monkeypatch: pytest.MonkeyPatch) -> None:
    """Query.health raises an unexpected exception carrying internal details."""

    async def broken(info: Any) -> Any:
        raise RuntimeError(INTERNAL_DETAIL)

    monkeypatch.setattr(resolvers.health, "health", broken)


@pytest.mark.usefixtures("failing_health")
async def test_production_masks_unexpected_errors_with_an_error_id_in_the_log(
    prod_node: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="cadt_gateway.graphql"):
        body = await prod_node.execute("query Probe { health { ok } }", expect_errors=True)
    error = body["errors"][0]
    error_id = error["extensions"]["errorId"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error_id in error["message"]
    assert INTERNAL_DETAIL not in str(body)
    assert "RuntimeError" not in str(body)
    records = [record for record in caplog.records if getattr(record, "error_id", None)]
    assert len(records) == 1
    record = records[0]
    assert record.error_id == error_id
    assert INTERNAL_DETAIL in record.getMessage()
    assert "Probe" in record.getMessage()
    assert record.exc_info is not None  # the traceback is in the log, with the same id


@pytest.mark.usefixtures("failing_health")
async def test_development_keeps_the_message_and_adds_the_error_id(node: Any) -> None:
    body = await node.execute("{ health { ok } }", expect_errors=True)
    error = body["errors"][0]
    assert INTERNAL_DETAIL in error["message"]
    assert error["extensions"]["errorId"]


async def test_expected_errors_are_not_masked(prod_node: Any) -> None:
    # A union member (data) and a deliberate VALIDATION error keep their messages.
    data = await prod_node.execute(
        'mutation { reclaimHomeOrganization(orgUid: "nope") {'
        " __typename ... on Error { message } } }"
    )
    result = data["reclaimHomeOrganization"]
    assert result["__typename"] != "Internal" and result["message"]
    body = await prod_node.execute(
        "{ organizations(first: -1) { edges { cursor } } }", expect_errors=True
    )
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert "errorId" not in body["errors"][0]["extensions"]
    body = await prod_node.execute("{ nope }", expect_errors=True)
    assert "nope" in body["errors"][0]["message"]


async def test_production_requires_the_key(prod_node: Any, api_key: str) -> None:
    response = await prod_node.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"x-api-key": "wrong"}
    )
    assert response.status_code == 401
    assert api_key not in response.text
    for path in ("/healthz", "/readyz", "/metrics"):
        response = await prod_node.http.get(path, headers={"x-api-key": ""})
        assert response.status_code in (200, 503), path
        assert api_key not in response.text
