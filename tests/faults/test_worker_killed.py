"""A worker SIGKILLed in the middle of a job: the job is picked up again and nothing doubles.

Each test runs `cadt-gateway worker` as a subprocess on the test database, the test Redis and
the test's simulator, holds a job at a known step with the simulator's `latency` fault, kills
the process with SIGKILL (no shutdown code runs) and starts another worker. A GraphQL node
without a worker (in this process) issues the mutations; nothing here calls a job directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arq.constants import in_progress_key_prefix, result_key_prefix
from arq.jobs import deserialize_result

from services.creation_state import CreationState
from services.mirrors import MIRROR_CLAIM_PREFIX
from tests.conftest import DATABASES, _truncate_postgres
from tests.faults.conftest import (
    DEADLINE,
    ArrivalFaults,
    SimulatorAdmin,
    audit_counts,
    audit_duplicates,
    eventually,
    home_rows,
    mirrors_per_store_url,
    worker_logs,
)
from tests.home_organization.conftest import create, record_of
from tests.organizations.conftest import make_remote_org

pytestmark = pytest.mark.slow


@pytest.fixture(params=[DATABASES[-1]])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_migrated: str | None,
) -> Iterator[str]:
    """One database: PostgreSQL when configured (where several workers run), else SQLite.

    Each test here starts worker processes and waits for a recovery; running them on both
    databases doubles the suite's longest tests for little: the code under test is the same.
    """
    if request.param == "sqlite":
        path = tmp_path / "cadt.sqlite3"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    assert postgres_migrated is not None
    _truncate_postgres(postgres_migrated)
    yield postgres_migrated


async def test_a_creation_killed_while_chia_creates_its_stores_completes_once(
    fault_settings: Any,
    start_node: Any,
    worker_processes: Any,
    simulator: Any,
    admin: SimulatorAdmin,
    database: Any,
    redis_client: Any,
) -> None:
    # job_timeout 5 s: arq hands the killed job out again 15 s after it started (timeout + 10 s)
    settings = fault_settings(job_timeout_seconds=5)
    node = await start_node(settings, run_worker=False)
    first = worker_processes(settings)
    await first.wait_ready(redis_client)
    workers = [first]

    # every create_data_store takes 1.5 s: the kill lands while Chia is creating the stores
    calls: list[str] = []
    original = simulator.state.create_store

    def counting(key: Any, fee: int) -> Any:
        result = original(key, fee)
        calls.append(result[0])
        return result

    simulator.state.create_store = counting
    faults = simulator.state.faults = ArrivalFaults(latency={"create_data_store": 1.5})
    accepted = await create(node, "Killed Org")
    assert accepted["__typename"] == "OperationAccepted", accepted

    async def creating() -> bool:
        record = await record_of(node.services)
        status = await node.services.lock.status()
        return (
            record is not None
            and record.state is CreationState.STORES_CREATING
            and status is not None
            and status.status == "Creating stores on blockchain"
        )

    await eventually(creating, what="creation in STORES_CREATING")

    async def four_sent() -> bool:
        return faults.arrived("create_data_store") == 4

    await eventually(four_sent, what="four create_data_store calls in flight")
    assert not calls  # none answered yet
    token = (await node.services.lock.holder()).token
    first.kill()
    await admin.clear_faults()

    # Chia finishes the four requests it received although their sender is dead
    async def four_created() -> bool:
        return len(calls) == 4

    await eventually(four_created, what="the four stores of the killed run")
    unsaved = set(calls)
    record = await record_of(node.services)
    assert record is not None and not any(store.id for store in record.stores.values())

    second = worker_processes(settings)
    workers.append(second)

    async def created() -> bool:
        rows = await home_rows(database)
        return (
            len(rows) == 1
            and rows[0].org_uid != "PENDING"
            and await record_of(node.services) is None
            and await node.services.lock.status() is None
        )

    await eventually(created, what="the creation completed", context=lambda: worker_logs(workers))
    rows = await home_rows(database)
    home = rows[0]
    assert home.name == "Killed Org"
    stores = {home.org_uid, home.registry_id, home.data_model_version_store_id, home.file_store_id}
    owned = await admin.owned_stores(0)
    # no store created twice: the four the killed run launched were adopted, none added
    assert len(owned) == 4, owned
    assert set(owned) == stores == unsaved

    # arq hands the killed job out again once its in-progress key expires (job timeout + 10 s);
    # its token was superseded by the recovery, so it does nothing
    job_id = f"create_home_organization:{token}"

    async def redelivered() -> Any:
        raw = await redis_client.get(result_key_prefix + job_id)
        return None if raw is None else deserialize_result(raw)

    result = await eventually(
        redelivered,
        within=DEADLINE + 15,
        what="the killed job re-run",
        context=lambda: worker_logs(workers),
    )
    assert result.success and str(result.result).startswith("skipped"), result
    assert not await redis_client.exists(in_progress_key_prefix + job_id)
    assert len(await admin.owned_stores(0)) == 4
    assert len(await home_rows(database)) == 1


IMPORT = """
mutation Import($orgUid: ID!) {
  importOrganization(orgUid: $orgUid) { __typename ... on Error { message code } }
}
"""


async def test_a_sync_killed_half_way_finishes_without_a_duplicated_audit_row(
    fault_settings: Any,
    start_node: Any,
    worker_processes: Any,
    simulator: Any,
    admin: SimulatorAdmin,
    database: Any,
    redis_client: Any,
) -> None:
    generations = 60
    remote = make_remote_org(simulator, "Synced Remote", registry_generations=generations)
    # batches of one generation, each diff 0.4 s: the sync commits in waves the kill splits.
    # A 10-minute job timeout: arq alone would hand the killed run out again after 610 s; the
    # run's lease (jobs/leases.py) lets the fan-out do it 1.5 s after the worker went silent.
    settings = fault_settings(job_timeout_seconds=600, sync_batch_size=1)
    node = await start_node(settings, run_worker=False)
    first = worker_processes(settings)
    await first.wait_ready(redis_client)
    workers = [first]
    await admin.faults(latency={"get_kv_diff": 0.4})
    result = await node.execute(IMPORT, {"orgUid": remote.org_uid})
    assert result["importOrganization"]["__typename"] in ("OrganizationPayload", "Done"), result

    async def half_way() -> bool:
        counts = await audit_counts(database, remote.registry_store_id)
        return 2 <= len(counts) < generations

    await eventually(half_way, what="part of the registry applied", interval=0.02)
    first.kill()
    await admin.clear_faults()
    at_kill = await audit_counts(database, remote.registry_store_id)
    assert 2 <= len(at_kill) < generations + 1, at_kill

    second = worker_processes(settings)
    workers.append(second)

    async def synced() -> bool:
        return len(await audit_counts(database, remote.registry_store_id)) == generations + 1

    await eventually(
        synced, what="the whole registry applied", context=lambda: worker_logs(workers)
    )
    counts = await audit_counts(database, remote.registry_store_id)
    # generation 0 is CREATE REGISTRY, every other generation inserted one record
    assert counts == dict.fromkeys(range(generations + 1), 1)
    assert await audit_duplicates(database) == []


FILE_SERVER = "https://files.example.test"


async def test_a_mirror_check_killed_mid_way_adds_each_mirror_once(
    fault_settings: Any,
    start_node: Any,
    worker_processes: Any,
    simulator: Any,
    database: Any,
    redis_client: Any,
) -> None:
    remote = make_remote_org(simulator, "Mirrored Remote")
    settings = fault_settings(datalayer_file_server_url=FILE_SERVER)
    node = await start_node(settings, run_worker=False)
    # the balance check and add_mirror take 1.5 s each; a check runs every 0.5 s, and
    # overlapping checks claim the next store while the first is still in flight
    faults = simulator.state.faults = ArrivalFaults(
        latency={"get_wallet_balance": 1.5, "add_mirror": 1.5}
    )
    first = worker_processes(settings)
    await first.wait_ready(redis_client)
    workers = [first]
    result = await node.execute(IMPORT, {"orgUid": remote.org_uid})
    assert result["importOrganization"]["__typename"] in ("OrganizationPayload", "Done"), result

    # the kill lands when one add_mirror reached Chia (which carries it out) AND another pair
    # is claimed but its add_mirror not sent yet (the worker is checking its balance)
    async def both_in_flight() -> bool:
        claimed = len(await redis_client.keys(f"{MIRROR_CLAIM_PREFIX}*"))
        sent = faults.arrived("add_mirror")
        return sent >= 1 and claimed > sent

    await eventually(both_in_flight, what="an add sent and a claim not sent yet")
    first.kill()
    after = simulator.state.faults = ArrivalFaults()  # healthy again, still counting calls

    second = worker_processes(settings)
    workers.append(second)
    wanted = {(store, FILE_SERVER) for store in remote.store_ids}

    async def all_mirrored() -> bool:
        return set(mirrors_per_store_url(simulator)) == wanted

    await eventually(
        all_mirrored, what="every store mirrored", context=lambda: worker_logs(workers)
    )
    # three more checks of every store (get_mirrors of each) add nothing twice
    reads = after.arrived("get_mirrors")

    async def three_more_checks() -> bool:
        return after.arrived("get_mirrors") >= reads + 3 * len(wanted)

    await eventually(three_more_checks, what="three more mirror checks")
    assert mirrors_per_store_url(simulator) == dict.fromkeys(wanted, 1)
