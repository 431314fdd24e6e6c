"""Recovery paths: reorg reset (scenario 22), home org exempt and lost local data (scenario 20),
the self-healing subscription reset, and each simulator fault switch that touches sync."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from services.chia.models.datalayer import SyncStatus
from services.container import Services
from services.db.engine import Database
from services.db.models import Audit, RegistryRecord, SyncState
from services.errors import PreconditionFailed
from services.simulator import FailRule, MissRule, StuckRule
from services.sync import (
    SyncResult,
    assert_home_writable,
    home_writes_blocked,
    sync_organization,
)
from services.views import organizations_by_uid, sync_views
from tests.sync.harness import (
    LOCAL,
    MIRROR_URL,
    Chain,
    FakeClock,
    add_organization,
    audit_rows,
    delete,
    insert,
    records,
    upsert,
)

ORG = "c" * 64
HOME = "d" * 64


async def remote_org(chain: Chain, database: Database, generations: int) -> str:
    registry = chain.create_store(
        [[insert(f"unit|u{g}", {"g": g})] for g in range(1, generations + 1)]
    )
    chain.subscribe(registry)
    chain.cycle()
    await add_organization(database, org_uid=ORG, registry_id=registry, name="Remote")
    return registry


async def sync_state(database: Database, org_uid: str = ORG) -> SyncState:
    async with database.session() as session:
        state = await session.get(SyncState, org_uid)
    assert state is not None
    return state


# ---------------------------------------------------------------------------- scenario 22


async def test_reorg_resets_the_audit_to_generation_minus_two_scenario_22(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    # given DL synced at generation == target == 7 (root history length 8) ...
    registry = await remote_org(chain, database, 7)
    await sync_organization(services, ORG, clock=clock)
    # ... and an audit that says generation 9 (the chain reorged behind us)
    async with database.transaction() as session:
        for generation in (8, 9):
            session.add(
                Audit(
                    org_uid=ORG,
                    registry_id=registry,
                    generation=generation,
                    root_hash="f" * 64,
                    type="INSERT",
                    table="unit",
                )
            )
        session.add(
            RegistryRecord(org_uid=ORG, table="unit", key="fork", record="{}", generation=9)
        )

    # when the tick runs
    clock.advance(5)
    outcome = await sync_organization(services, ORG, clock=clock)

    # then the audit is reset to generation 5 and nothing else is processed this tick
    assert outcome.result is SyncResult.REORG_RESET
    assert max(row.generation for row in await audit_rows(database, ORG)) == 5
    assert set(await records(database, ORG)) == {f"unit|u{g}" for g in range(1, 6)}

    # and the next tick resumes
    clock.advance(5)
    resumed = await sync_organization(services, ORG, clock=clock)
    assert resumed.result is SyncResult.APPLIED
    assert resumed.applied_generations == 2
    assert set(await records(database, ORG)) == {f"unit|u{g}" for g in range(1, 8)}


# ---------------------------------------------------------------------------- scenario 20


async def home_org(chain: Chain, database: Database, generations: int) -> str:
    """A home organization whose four stores this node (key 0) owns."""
    registry = chain.create_store(
        [[insert(f"project|p{g}", {"g": g})] for g in range(1, generations + 1)], owner=LOCAL
    )
    org_store = chain.create_store([[insert("name", "Home")]], owner=LOCAL)
    await add_organization(database, org_uid=HOME, registry_id=registry, name="Home", is_home=True)
    # the org row's orgUid is its org store id on a real node; keep the fixed id for clarity
    async with database.transaction() as session:
        await session.execute(
            sa.text("UPDATE organizations SET data_model_version_store_id = :s WHERE org_uid = :o"),
            {"s": org_store, "o": HOME},
        )
    return registry


async def test_home_org_is_exempt_from_the_backoff_scenario_20(
    chain: Chain,
    database: Database,
    services: Services,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    # given the home org with len-1 != generation (DataLayer lagging, data intact)
    registry = await home_org(chain, database, 3)
    real = services.datalayer.get_sync_status

    async def lagging(store_id: str) -> SyncStatus:
        status = await real(store_id)
        if store_id != registry:
            return status
        return status.model_copy(update={"generation": 2})

    monkeypatch.setattr(services.datalayer, "get_sync_status", lagging)
    caplog.set_level(logging.DEBUG, logger="services")

    outcome = await sync_organization(services, HOME, clock=clock)

    # then no backoff, a debug line, and the sync proceeds up to what DataLayer holds
    assert outcome.result is not SyncResult.BACKING_OFF
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("(home) lags DataLayer" in r.getMessage() for r in caplog.records)
    assert (await sync_state(database, HOME)).backoff_since is None
    assert max(row.generation for row in await audit_rows(database, HOME)) == 2


async def test_lost_local_data_on_the_home_org_blocks_writes(
    chain: Chain,
    database: Database,
    services: Services,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    # given the home org's registry store lost its local data (fault lost_data)
    registry = await home_org(chain, database, 3)
    await sync_organization(services, HOME, clock=clock)
    assert await home_writes_blocked(services) is None
    chain.state.faults.lost_data.append(registry)
    caplog.set_level(logging.DEBUG, logger="services")

    # when the sync tick runs
    clock.advance(5)
    outcome = await sync_organization(services, HOME, clock=clock)

    # then a CRITICAL log, no backoff, the sync still runs, and writes are refused
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert critical[0].getMessage().startswith("CRITICAL: DataLayer store(s)")
    assert "lost their local data" in critical[0].getMessage()
    assert outcome.result is not SyncResult.BACKING_OFF
    reason = await home_writes_blocked(services)
    assert reason is not None and registry in reason
    with pytest.raises(PreconditionFailed):
        await assert_home_writable(services)
    view = (
        await sync_views(
            database, list((await organizations_by_uid(database, [HOME], "v2")).values())
        )
    )[HOME]
    assert view.writes_blocked == reason

    # the CRITICAL is not repeated every tick (assert_home_writable checked DataLayer itself
    # on the real clock, which may have logged once more)
    logged = len([r for r in caplog.records if r.levelno == logging.CRITICAL])
    clock.advance(5)
    await sync_organization(services, HOME, clock=clock)
    assert len([r for r in caplog.records if r.levelno == logging.CRITICAL]) == logged

    # when the data is back, writes are allowed again
    chain.state.faults.lost_data.clear()
    clock.advance(5)
    await sync_organization(services, HOME, clock=clock)
    assert await home_writes_blocked(services) is None
    await assert_home_writable(services)


async def test_remote_generation_zero_with_target_ahead_is_just_downloading(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    # subscriber semantics: a non-home store at 0 with target > 0 is "still downloading"
    registry = chain.create_store([[insert("unit|u1", {})], [insert("unit|u2", {})]])
    chain.state.faults.stuck.append(StuckRule(store_id=registry, generation=0, key=0))
    chain.subscribe(registry)
    chain.cycle()
    await add_organization(database, org_uid=ORG, registry_id=registry)
    outcome = await sync_organization(services, ORG, clock=clock)
    assert outcome.result is SyncResult.BACKING_OFF
    assert await home_writes_blocked(services) is None
    assert (await sync_state(database)).backoff_reason == (
        "generation 0 of 2 downloaded (root history 3)"
    )


# ---------------------------------------------------------------------------- self-heal


async def test_a_missed_download_is_healed_by_resetting_the_subscription(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    # given a synced remote org ...
    registry = await remote_org(chain, database, 3)
    await sync_organization(services, ORG, clock=clock)
    # ... whose next file is missed once: DataLayer backs the mirror off for 300 s
    chain.state.faults.miss_downloads.append(MissRule(store_id=registry, count=1, key=0))
    chain.write(registry, [insert("unit|u4", {})])
    chain.cycle()
    assert chain.local_generation(registry) == 3

    # when ticks run every 5 s (and DataLayer cycles every 5 s)
    reset_at = None
    for tick in range(0, 200, 5):
        clock.advance(5)
        chain.cycle()
        outcome = await sync_organization(services, ORG, clock=clock)
        if outcome.subscription_reset:
            reset_at = tick
            state = await sync_state(database)
            assert "subscription reset once" in (state.backoff_reason or "")
        if outcome.result is SyncResult.APPLIED:
            break

    # then after sync_stuck_reset_seconds (120 s) it was reset once, and the sync caught up
    assert reset_at is not None and reset_at >= 115
    assert outcome.result is SyncResult.APPLIED
    assert outcome.sync_remaining == 0
    state = await sync_state(database)
    assert state.backoff_since is None
    assert state.last_reset_at is not None
    subscription = chain.state.key(LOCAL).subscriptions[registry]
    assert subscription.urls == [MIRROR_URL]


async def test_the_reset_happens_at_most_once_per_backoff_step(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    # a store that no reset can help (stuck fault): one reset per backoff step, no more
    registry = await remote_org(chain, database, 3)
    await sync_organization(services, ORG, clock=clock)
    chain.state.faults.stuck.append(StuckRule(store_id=registry, generation=3, key=0))
    chain.write(registry, [insert("unit|u4", {})])
    chain.cycle()
    resets = []
    start = clock.now
    for _tick in range(0, 1000, 5):
        outcome = await sync_organization(services, ORG, clock=clock)
        if outcome.subscription_reset:
            resets.append(round((clock.now - start).total_seconds()))
        clock.advance(5)
    # steps: [0,30) [30,90) [90,210) [210,450) [450,930) [930,1530): stuck >= 120 s from 120
    assert resets == [120, 210, 450, 930]
    assert "subscription reset 4 times" in ((await sync_state(database)).backoff_reason or "")


async def test_no_reset_while_the_wallet_is_not_synced(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    registry = await remote_org(chain, database, 3)
    await sync_organization(services, ORG, clock=clock)
    chain.state.faults.stuck.append(StuckRule(store_id=registry, generation=3, key=0))
    chain.state.faults.wallet_unsynced.append(LOCAL)
    chain.write(registry, [insert("unit|u4", {})])
    chain.cycle()
    for _tick in range(0, 400, 5):
        assert not (await sync_organization(services, ORG, clock=clock)).subscription_reset
        clock.advance(5)


# ---------------------------------------------------------------------------- faults


async def test_stuck_fault_then_release_catches_up_and_clears(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    registry = chain.create_store([[insert(f"unit|u{g}", {})] for g in range(1, 6)])
    chain.state.faults.stuck.append(StuckRule(store_id=registry, generation=2, key=0))
    chain.subscribe(registry)
    chain.cycle()
    await add_organization(database, org_uid=ORG, registry_id=registry)
    assert (await sync_organization(services, ORG, clock=clock)).result is SyncResult.BACKING_OFF
    state = await sync_state(database)
    assert state.backoff_reason == "generation 2 of 5 downloaded (root history 6)"

    chain.state.faults.stuck.clear()
    chain.cycle()
    clock.advance(5)
    outcome = await sync_organization(services, ORG, clock=clock)
    assert outcome.result is SyncResult.APPLIED
    assert outcome.sync_remaining == 0
    assert (await sync_state(database)).backoff_since is None


async def test_mirror_down_keeps_it_behind_until_the_mirror_returns_and_a_reset(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    registry = await remote_org(chain, database, 2)
    await sync_organization(services, ORG, clock=clock)
    chain.state.faults.mirrors_down.append(MIRROR_URL)
    chain.write(registry, [insert("unit|u3", {})])
    for _tick in range(0, 60, 5):
        clock.advance(5)
        chain.cycle()
        assert (await sync_organization(services, ORG, clock=clock)).result is (
            SyncResult.BACKING_OFF
        )
    # the mirror comes back; DataLayer would still wait out its 300 s back-off
    chain.state.faults.mirrors_down.clear()
    outcome = None
    for _tick in range(0, 200, 5):
        clock.advance(5)
        chain.cycle()
        outcome = await sync_organization(services, ORG, clock=clock)
        if outcome.result is SyncResult.APPLIED:
            break
    assert outcome is not None and outcome.result is SyncResult.APPLIED
    assert (await sync_state(database)).last_reset_at is not None


async def test_subscribed_but_nothing_downloaded_is_not_an_error(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    registry = chain.create_store([[insert("unit|u1", {})]])
    chain.subscribe(registry)  # no cycle yet: nothing downloaded
    await add_organization(database, org_uid=ORG, registry_id=registry)
    outcome = await sync_organization(services, ORG, clock=clock)
    assert outcome.result is SyncResult.BACKING_OFF
    state = await sync_state(database)
    assert state.datalayer_generation is None
    assert state.backoff_reason == "nothing downloaded yet (root history 2)"
    chain.cycle()
    clock.advance(5)
    assert (await sync_organization(services, ORG, clock=clock)).result is SyncResult.APPLIED


async def test_a_failing_diff_keeps_what_was_applied_and_retries_next_run(
    chain: Chain, database: Database, make_services: Callable[..., Services], clock: FakeClock
):
    await remote_org(chain, database, 6)
    services = make_services(sync_batch_size=1)
    # the 4th get_kv_diff fails: generations 1-3 are committed, the rest waits for the next run
    chain.state.faults.fail_next.append(
        FailRule(method="get_kv_diff", error="Unable to diff: Can't find keys", count=1, key=0)
    )
    # with prefetching the failing call may be any of the first window; only order matters
    first = await sync_organization(services, ORG, clock=clock)
    assert first.detail.startswith("diff of generation")
    applied = first.last_generation
    assert applied is not None and applied < 6
    assert max(r.generation for r in await audit_rows(database, ORG)) == applied
    second = await sync_organization(services, ORG, clock=clock)
    assert second.sync_remaining == 0
    assert len(await records(database, ORG)) == 6


async def test_root_history_failure_is_an_upstream_error(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    await remote_org(chain, database, 1)
    chain.state.faults.fail_next.append(
        FailRule(method="get_root_history", error="DataLayerWallet not available", key=0)
    )
    outcome = await sync_organization(services, ORG, clock=clock)
    assert outcome.result is SyncResult.UPSTREAM_ERROR
    assert (await sync_organization(services, ORG, clock=clock)).result is SyncResult.APPLIED


async def test_latency_does_not_change_the_result(
    chain: Chain, database: Database, services: Services, clock: FakeClock
):
    await remote_org(chain, database, 20)
    chain.state.faults.latency["get_kv_diff"] = 0.01
    outcome = await sync_organization(services, ORG, clock=clock)
    assert outcome.applied_generations == 20
    assert [r.generation for r in await audit_rows(database, ORG)] == list(range(21))


async def test_an_update_and_delete_across_batches_end_in_the_right_records(
    chain: Chain, database: Database, make_services: Callable[..., Services], clock: FakeClock
):
    registry = chain.create_store(
        [
            [insert("unit|a", {"v": 1}), insert("unit|b", {"v": 1})],
            [upsert("unit|a", {"v": 2})],
            [delete("unit|b")],
            [insert("unit|b", {"v": 3})],
            [delete("unit|a")],
        ]
    )
    chain.subscribe(registry)
    chain.cycle()
    await add_organization(database, org_uid=ORG, registry_id=registry)
    for batch in (1, 2, 3, 500):
        async with database.transaction() as session:
            await session.execute(sa.delete(Audit))
            await session.execute(sa.delete(RegistryRecord))
        await sync_organization(make_services(sync_batch_size=batch), ORG, clock=clock)
        assert await records(database, ORG) == {"unit|b": {"v": 3}}, batch
    types = [(r.generation, r.type) for r in await audit_rows(database, ORG)]
    assert types == [
        (0, "CREATE REGISTRY"),
        (1, "INSERT"),
        (1, "INSERT"),
        (2, "UPDATE"),
        (3, "DELETE"),
        (4, "INSERT"),
        (5, "DELETE"),
    ]
