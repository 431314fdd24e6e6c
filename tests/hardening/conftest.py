"""Fixtures of the hardening tests: a development node and a production node (API key set)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GraphQLClient, register_secret
from tests.lock.conftest import serve_node

__all__ = ["serve_node"]  # the live-server fixture of the lock tests

#: Distinctive fake secrets: the suite-wide log check (tests/conftest.py) looks for them.
API_KEY = "cadt-test-api-key-Zq7Xw2Lm9Pv4"


@pytest.fixture
def api_key() -> str:
    """The production node's API key (registered as a secret never to be logged)."""
    register_secret(API_KEY)
    return API_KEY


@pytest.fixture
async def prod_node(start_node: Any, node_settings: Any, api_key: str) -> GraphQLClient:
    """A node with CADT_ENV=production and an API key (introspection and GraphiQL off)."""
    client: GraphQLClient = await start_node(node_settings(env="production", api_key=api_key))
    client.http.headers["x-api-key"] = api_key
    return client
