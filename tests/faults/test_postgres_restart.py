"""PostgreSQL going away under a running gateway: a clear error, then recovery, no restart.

Stopping the machine's PostgreSQL would break every other suite on it, so two stand-ins:
- `pg_terminate_backend` of every connection of the test database: what a restart does to
  the gateway's pooled connections (the pool's pre-ping replaces them: nothing fails);
- a TCP switch between the gateway and PostgreSQL, cut and restored: the server is down for a
  while (connections dropped, new ones refused) and then back on the same address.
Runs only with CADT_TEST_DATABASE_URL (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DATABASE_URL, _truncate_postgres
from tests.faults.conftest import eventually

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs CADT_TEST_DATABASE_URL (PostgreSQL)"),
]

ORGANIZATIONS = """
query Orgs($first: Int!) {
  organizations(first: $first) { totalCount edges { node { orgUid name sync { synced } } } }
}
"""
HEALTH = """
query { health { ok database { state detail } redis { state } datalayer { state }
  wallet { state } worker { state } } }
"""
CREATE = """
mutation { createHomeOrganization(input: {name: "After the outage"}) {
  __typename ... on Error { message code } } }
"""


@pytest.fixture
def database_url(postgres_migrated: str | None) -> Iterator[str]:
    """The PostgreSQL test database only (the faults here are PostgreSQL's)."""
    assert postgres_migrated is not None
    _truncate_postgres(postgres_migrated)
    yield postgres_migrated


def _switched(url: str, port: int) -> str:
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


async def _terminate_backends(url: str) -> int:
    """pg_terminate_backend every other connection of the test database; how many."""
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return sum(1 for row in rows if row[0])
    finally:
        await connection.close()


async def test_a_restart_between_requests_is_invisible(
    start_node: Any, fault_settings: Any, database_url: str
) -> None:
    node = await start_node(fault_settings())
    before = await node.execute(ORGANIZATIONS, {"first": 10})
    assert await _terminate_backends(database_url) >= 1  # the node's pooled connections
    # the pool pings a connection before handing it out and replaces a dead one
    assert await node.execute(ORGANIZATIONS, {"first": 11}) == before
    health = (await node.execute(HEALTH))["health"]
    assert health["database"]["state"] == "UP"


async def test_requests_fail_clearly_while_postgres_is_down_and_recover_after(
    start_node: Any, fault_settings: Any, database_url: str, tcp_switches: Any
) -> None:
    switch = await tcp_switches(make_url(database_url).port or 5432)
    node = await start_node(fault_settings(database_url=_switched(database_url, switch.port)))
    before = await node.execute(ORGANIZATIONS, {"first": 10})

    await switch.cut()
    # a page not answered before: the response cache cannot serve it
    failed = await node.execute(ORGANIZATIONS, {"first": 11}, expect_errors=True)
    error = failed["errors"][0]
    assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE", error
    assert error["message"].startswith("The database is unavailable; try again shortly.")
    assert "Traceback" not in error["message"] and "SELECT" not in error["message"]
    assert error["extensions"]["errorId"] in error["message"]
    health = (await node.execute(HEALTH))["health"]
    assert health["ok"] is False
    assert health["database"]["state"] == "DOWN"
    assert {health[part]["state"] for part in ("redis", "datalayer", "wallet")} == {"UP"}

    await switch.restore()

    async def served_again() -> bool:
        response = await node.http.post(
            "/graphql", json={"query": ORGANIZATIONS, "variables": {"first": 12}}
        )
        return response.status_code == 200 and not response.json().get("errors")

    await eventually(served_again, what="queries served again")
    assert await node.execute(ORGANIZATIONS, {"first": 10}) == before
    created = (await node.execute(CREATE))["createHomeOrganization"]
    assert created["__typename"] == "OperationAccepted", created
