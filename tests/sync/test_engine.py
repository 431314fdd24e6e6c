"""The sync engine on a hand-driven chain: catch-up, audit rows, records, idempotence."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from services.chia import ZERO_HASH
from services.chia.models.datalayer import SyncStatus
from services.container import Services
from services.db.engine import Database
from services.db.models import Audit, SyncState
from services.sync import SyncResult, diff_items, plan_generation, sync_organization
from tests.sync.harness import (
    Chain,
    FakeClock,
    add_organization,
    audit_rows,
    delete,
    insert,
    organization,
    project,
    records,
    upsert,
)

ORG = "a" * 64


def commit(
    *changes: dict[str, str], author: str = "alice", comment: str = "c"
) -> list[dict[str, str]]:
    """A CADT commit: the changes plus the per-commit author and comment keys."""
    return [*changes, upsert("author", {"author": author}), upsert("comment", {"comment": comment})]


async def subscribed_registry(
    chain: Chain, database: Database, generations: list[list[dict[str, str]]]
) -> str:
    registry = chain.create_store(generations)
    chain.subscribe(registry)
    chain.cycle()
    await add_organization(database, org_uid=ORG, registry_id=registry)
    return registry


async def test_applies_every_pending_generation_in_one_run(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    # given a remote registry with 3 generations, downloaded by this node
    registry = await subscribed_registry(
        chain,
        database,
        [
            commit(insert("project|p1", project(1)), insert("project|p2", project(2))),
            commit(upsert("project|p1", project(1, rev=2)), author="bob", comment="edit"),
            commit(delete("project|p2"), insert("unit|u1", {"unitId": "u1"})),
        ],
    )

    # when one sync run happens
    outcome = await sync_organization(services, ORG, clock=clock)

    # then every generation is applied, in order, with CADT's audit types
    assert outcome.result is SyncResult.APPLIED
    assert outcome.applied_generations == 3
    assert outcome.sync_remaining == 0
    rows = await audit_rows(database, ORG)
    assert [(r.generation, r.type, r.table) for r in rows] == [
        (0, "CREATE REGISTRY", None),
        (1, "INSERT", "project"),
        (1, "INSERT", "project"),
        (2, "UPDATE", "project"),
        (3, "DELETE", "project"),
        (3, "INSERT", "unit"),
    ]
    assert {r.registry_id for r in rows} == {registry}
    assert [(r.author, r.comment) for r in rows if r.generation == 2] == [("bob", "edit")]
    assert rows[3].change is not None and '"rev":2' in rows[3].change
    assert rows[1].onchain_confirmed_at is not None
    assert await records(database, ORG) == {
        "project|p1": project(1, rev=2),
        "unit|u1": {"unitId": "u1"},
    }
    org = await organization(database, ORG)
    assert org.synced is True
    assert org.sync_remaining == 0
    assert org.registry_hash == chain.state.stores[registry].data.generations[3].root


async def test_a_second_run_and_a_replayed_generation_write_nothing_twice(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    await subscribed_registry(chain, database, [commit(insert("project|p1", project(1)))])
    await sync_organization(services, ORG, clock=clock)
    before = [(r.generation, r.seq, r.type) for r in await audit_rows(database, ORG)]

    # a second run finds nothing to do
    again = await sync_organization(services, ORG, clock=clock)
    assert again.result is SyncResult.SYNCED
    assert [(r.generation, r.seq, r.type) for r in await audit_rows(database, ORG)] == before

    # a replay of generation 1 (audit rolled back to 0, records kept) writes it once more only
    async with database.transaction() as session:
        await session.execute(sa.delete(Audit).where(Audit.generation > 0))  # type: ignore[arg-type]
    replay = await sync_organization(services, ORG, clock=clock)
    assert replay.applied_generations == 1
    assert [(r.generation, r.seq, r.type) for r in await audit_rows(database, ORG)] == before
    assert await records(database, ORG) == {"project|p1": project(1)}


async def test_no_change_generation_and_keys_without_a_table(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    # a commit that only changes author/comment, and a key without "|"
    await subscribed_registry(
        chain,
        database,
        [
            commit(insert("project|p1", project(1)), comment="first"),
            commit(comment="only a comment"),
            commit(insert("loose", "text value")),
        ],
    )
    await sync_organization(services, ORG, clock=clock)
    rows = await audit_rows(database, ORG)
    assert [(r.generation, r.type, r.table, r.comment) for r in rows] == [
        (0, "CREATE REGISTRY", None, None),
        (1, "INSERT", "project", "first"),
        (2, "NO CHANGE", None, "only a comment"),
        (3, "INSERT", "loose", "c"),
    ]
    assert set(await records(database, ORG)) == {"project|p1"}


async def test_batches_commit_whole_generations(
    chain: Chain, database: Database, make_services: Callable[..., Services], clock: FakeClock
):
    # 30 generations of 7 changes with a batch of 10 rows: 2 generations per transaction
    generations = [
        commit(*(insert(f"unit|g{g}-{i}", {"g": g, "i": i}) for i in range(7)))
        for g in range(1, 31)
    ]
    await subscribed_registry(chain, database, generations)
    services = make_services(sync_batch_size=10)
    outcome = await sync_organization(services, ORG, clock=clock)
    assert outcome.applied_generations == 30
    assert outcome.audit_rows == 210
    assert len(await records(database, ORG)) == 210
    generations_seen = {r.generation for r in await audit_rows(database, ORG)}
    assert generations_seen == set(range(31))


async def test_generation_zero_is_a_number_scenario_21(
    chain: Chain,
    database: Database,
    services: Services,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
):
    # given sync_status {generation 0, target 0} for a non-home org with root history length 1
    await subscribed_registry(chain, database, [])

    async def zero(store_id: str) -> SyncStatus:
        return SyncStatus(
            generation=0, root_hash=ZERO_HASH, target_generation=0, target_root_hash=ZERO_HASH
        )

    monkeypatch.setattr(services.datalayer, "get_sync_status", zero)

    outcome = await sync_organization(services, ORG, clock=clock)

    # then it is usable (not "could not get datalayer sync status"): CREATE REGISTRY, synced
    assert outcome.result is SyncResult.SYNCED
    assert [r.type for r in await audit_rows(database, ORG)] == ["CREATE REGISTRY"]
    async with database.session() as session:
        state = await session.get(SyncState, ORG)
    assert state is not None
    assert (state.datalayer_generation, state.datalayer_target_generation) == (0, 0)
    assert state.backoff_since is None
    assert (await organization(database, ORG)).synced is True


async def test_an_empty_registry_is_synced_even_when_datalayer_downloaded_nothing(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    # Chia downloads nothing while only the launch root exists; that is generation 0 of 0
    await subscribed_registry(chain, database, [])
    outcome = await sync_organization(services, ORG, clock=clock)
    assert outcome.result is SyncResult.SYNCED
    org = await organization(database, ORG)
    assert (org.synced, org.sync_remaining) == (True, 0)
    async with database.session() as session:
        state = await session.get(SyncState, ORG)
    assert state is not None and state.backoff_since is None


async def test_new_generations_are_applied_by_later_runs(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    registry = await subscribed_registry(
        chain, database, [commit(insert("project|p1", project(1)))]
    )
    await sync_organization(services, ORG, clock=clock)
    chain.write(registry, commit(insert("project|p2", project(2))))
    chain.write(registry, commit(delete("project|p1")))
    chain.cycle()
    clock.advance(5)
    outcome = await sync_organization(services, ORG, clock=clock)
    assert outcome.applied_generations == 2
    assert await records(database, ORG) == {"project|p2": project(2)}


async def test_unsubscribed_and_registryless_organizations_are_left_alone(
    database: Database, services: Services, clock: FakeClock
):
    await add_organization(database, org_uid=ORG, registry_id=None)
    assert (await sync_organization(services, ORG, clock=clock)).result is SyncResult.NO_REGISTRY
    await add_organization(database, org_uid="b" * 64, registry_id="c" * 64, subscribed=False)
    outcome = await sync_organization(services, "b" * 64, clock=clock)
    assert outcome.result is SyncResult.NOT_SUBSCRIBED


def test_plan_sorts_keys_and_merges_delete_insert_into_update():
    from services.chia.models.datalayer import KvDiffEntry, KvDiffType

    def entry(kind: KvDiffType, key: str, value: str) -> KvDiffEntry:
        return KvDiffEntry(type=kind, key=key.encode().hex(), value=value.encode().hex())

    plan = plan_generation(
        diff_items(
            [
                entry(KvDiffType.INSERT, "unit|b", '{"v":2}'),
                entry(KvDiffType.INSERT, "comment", '{"comment":"why"}'),
                entry(KvDiffType.DELETE, "unit|b", '{"v":1}'),
                entry(KvDiffType.INSERT, "project|a", "{}"),
                entry(KvDiffType.DELETE, "unit|c", '{"v":3}'),
            ]
        )
    )
    assert plan.comment == "why"
    assert plan.author is None
    assert [(c.type, c.table, c.record_key, c.text) for c in plan.changes] == [
        ("INSERT", "project", "a", "{}"),
        ("UPDATE", "unit", "b", '{"v":2}'),
        ("DELETE", "unit", "c", '{"v":3}'),
    ]


async def test_an_idle_run_writes_nothing_until_last_synced_at_is_old(
    chain: Chain, database: Database, make_services: Callable[..., Services], clock: FakeClock
):
    # every write bumps the response cache's data version: an idle node must not write each
    # organization's lastSyncedAt on every 5 s run
    services = make_services(sync_state_touch_interval_seconds=60)
    registry = await subscribed_registry(
        chain, database, [commit(insert("project|p1", project(1)))]
    )
    await sync_organization(services, ORG, clock=clock)
    first_sync = await _state(database)
    writes: list[str] = []
    engine = database.engine.sync_engine

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        clock.advance(30)
        idle = await sync_organization(services, ORG, clock=clock)
        assert idle.result is SyncResult.SYNCED
        assert writes == []
        assert (await _state(database)).last_synced_at == first_sync.last_synced_at

        clock.advance(31)  # lastSyncedAt is now 61 s old: touched once
        await sync_organization(services, ORG, clock=clock)
        assert writes and (await _state(database)).last_synced_at == clock.now
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)

    # anything new is written at once, however recent lastSyncedAt is
    writes.clear()
    chain.write(registry, commit(insert("project|p2", project(2))))
    chain.cycle()
    clock.advance(1)
    applied = await sync_organization(services, ORG, clock=clock)
    assert applied.applied_generations == 1


async def test_a_touch_interval_of_zero_writes_every_run(
    chain: Chain, database: Database, make_services: Callable[..., Services], clock: FakeClock
):
    services = make_services(sync_state_touch_interval_seconds=0)
    await subscribed_registry(chain, database, [commit(insert("project|p1", project(1)))])
    await sync_organization(services, ORG, clock=clock)
    clock.advance(1)
    await sync_organization(services, ORG, clock=clock)
    assert (await _state(database)).last_synced_at == clock.now


async def _state(database: Database) -> SyncState:
    async with database.session() as session:
        state = await session.get(SyncState, ORG)
    assert state is not None
    return state
