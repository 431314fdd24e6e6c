"""The mismatch backoff: scenarios 16-20 of cadt-domain.md section 9, clock injected."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.backoff import (
    BackoffAction,
    BackoffPolicy,
    Observation,
    evaluate,
)
from services.chia.models.datalayer import SyncStatus
from services.container import Services
from services.db.engine import Database
from services.db.models import SyncState
from services.simulator import StuckRule
from services.sync import SyncResult, sync_organization
from tests.sync.harness import Chain, FakeClock, add_organization, audit_rows, insert, organization

ORG = "b" * 64
BACKOFF_LOGGER = "services.backoff"


def backoff_records(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == BACKOFF_LOGGER and (level is None or record.levelno == level)
    ]


async def stuck_org(chain: Chain, database: Database, *, generations: int, stuck_at: int) -> str:
    """A remote registry of `generations` generations whose download is stuck at `stuck_at`."""
    registry = chain.create_store(
        [[insert(f"unit|u{g}", {"g": g})] for g in range(1, generations + 1)]
    )
    chain.state.faults.stuck.append(StuckRule(store_id=registry, generation=stuck_at, key=0))
    chain.subscribe(registry)
    chain.cycle()
    assert chain.local_generation(registry) == stuck_at
    await add_organization(database, org_uid=ORG, registry_id=registry, name="Stuck Org")
    return registry


async def state_of(database: Database) -> SyncState:
    async with database.session() as session:
        state = await session.get(SyncState, ORG)
    assert state is not None
    return state


# ---------------------------------------------------------------------------- pure policy


def test_policy_schedule_and_summary_without_a_database():
    policy = BackoffPolicy()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    observation = Observation(root_history_length=6, generation=3, target_generation=5)
    entry = None
    extended_at = []
    summaries = []
    for tick in range(0, 2600, 5):
        now = start + timedelta(seconds=tick)
        decision = evaluate(entry, observation, now, policy)
        assert decision.skip
        if decision.action is BackoffAction.EXTENDED:
            extended_at.append(tick)
        if decision.action is BackoffAction.SUMMARY:
            summaries.append(tick)
        entry = decision.entry
    assert extended_at == [30, 90, 210, 450, 930, 1530, 2130]
    assert all(b - a >= 300 for a, b in itertools.pairwise(summaries))
    assert summaries == [750, 1230, 1830, 2430]
    recovered = evaluate(entry, Observation(6, 5, 5), start + timedelta(seconds=2600), policy)
    assert recovered.action is BackoffAction.RECOVERED
    assert recovered.entry is None
    assert not recovered.skip


def test_reason_text():
    assert Observation(6, 3, 5).describe() == "generation 3 of 5 downloaded (root history 6)"
    assert Observation(6, None, None).describe() == "nothing downloaded yet (root history 6)"


# ---------------------------------------------------------------------------- scenarios


async def test_first_hit_warns_once_and_skips_scenario_16(
    chain: Chain,
    database: Database,
    services: Services,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    # given a non-home org with root history length 6 and sync_status generation 3, target 5
    await stuck_org(chain, database, generations=5, stuck_at=3)
    caplog.set_level(logging.DEBUG, logger="services")

    # when the sync tick runs
    outcome = await sync_organization(services, ORG, clock=clock)

    # then exactly one WARN "Root history mismatch...", the org is skipped, no audit rows
    assert outcome.result is SyncResult.BACKING_OFF
    warnings = backoff_records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0].startswith("Root history mismatch for Stuck Org")
    assert "rootHistory.length-1=5 vs sync_status.generation=3" in warnings[0]
    assert await audit_rows(database, ORG) == []
    state = await state_of(database)
    assert state.backoff_reason == "generation 3 of 5 downloaded (root history 6)"
    assert state.backoff_delay_seconds == 30
    assert state.backoff_next_retry_at == clock.now + timedelta(seconds=30)


async def test_schedule_and_log_levels_while_it_persists_scenario_17(
    chain: Chain,
    database: Database,
    make_services: Callable[..., Services],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    # given the mismatch persists (self-heal off, to see the plain CADT schedule)
    await stuck_org(chain, database, generations=5, stuck_at=3)
    services = make_services(sync_stuck_reset_seconds=10**6)
    caplog.set_level(logging.DEBUG, logger="services")
    start = clock.now

    # when ticks run every 5 s for 36 minutes
    reevaluations: list[int] = []
    summaries: list[int] = []
    for _tick in range(0, 2160, 5):
        seen = len(caplog.records)
        await sync_organization(services, ORG, clock=clock)
        offset = round((clock.now - start).total_seconds())
        for record in caplog.records[seen:]:
            if record.name != BACKOFF_LOGGER:
                continue
            if "persists (gen" in record.getMessage():
                assert record.levelno == logging.DEBUG
                reevaluations.append(offset)
            if "still waiting" in record.getMessage():
                assert record.levelno == logging.INFO
                summaries.append(offset)
        clock.advance(5)

    # then re-evaluations come at +30, +90, +210, +450, +930, +1530, then every 600 s
    assert reevaluations == [30, 90, 210, 450, 930, 1530, 2130]
    # one WARN for the whole episode; INFO summaries at most once per 300 s
    assert len(backoff_records(caplog, logging.WARNING)) == 1
    assert summaries and all(b - a >= 300 for a, b in itertools.pairwise(summaries))
    # the generations DataLayer holds were applied at a re-evaluation; nothing beyond
    assert max(row.generation for row in await audit_rows(database, ORG)) == 3
    assert (await organization(database, ORG)).sync_remaining == 2


async def test_target_only_mismatch_is_debug_scenario_18(
    chain: Chain,
    database: Database,
    services: Services,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    # given generation == len-1 but target_generation != len-1
    registry = chain.create_store([[insert("unit|u1", {})], [insert("unit|u2", {})]])
    chain.subscribe(registry)
    chain.cycle()
    await add_organization(database, org_uid=ORG, registry_id=registry, name="Target Org")
    real = services.datalayer.get_sync_status

    async def ahead_target(store_id: str) -> SyncStatus:
        status = await real(store_id)
        return status.model_copy(update={"target_generation": status.target_generation + 1})

    monkeypatch.setattr(services.datalayer, "get_sync_status", ahead_target)
    caplog.set_level(logging.DEBUG, logger="services")

    outcome = await sync_organization(services, ORG, clock=clock)

    # then DEBUG (not WARN) and a skip with the same 30 s backoff
    assert outcome.result is SyncResult.BACKING_OFF
    assert backoff_records(caplog, logging.WARNING) == []
    assert any(
        m.startswith("Target generation mismatch") for m in backoff_records(caplog, logging.DEBUG)
    )
    assert (await state_of(database)).backoff_delay_seconds == 30


async def test_recovery_logs_once_and_syncs_in_the_same_tick_scenario_19(
    chain: Chain,
    database: Database,
    services: Services,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    # given a tracked (backing-off) org
    registry = await stuck_org(chain, database, generations=5, stuck_at=3)
    await sync_organization(services, ORG, clock=clock)
    clock.advance(12)
    await sync_organization(services, ORG, clock=clock)
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="services")

    # when DataLayer catches up (len-1 == generation == target)
    chain.state.faults.stuck.clear()
    chain.cycle()
    clock.advance(5)
    outcome = await sync_organization(services, ORG, clock=clock)

    # then one INFO "caught up after Ns", the entry is gone, and the sync ran in this tick
    infos = backoff_records(caplog, logging.INFO)
    assert infos == ["Stuck Org datalayer sync caught up after 17s. Resuming normal sync."]
    assert outcome.result is SyncResult.APPLIED
    assert outcome.sync_remaining == 0
    state = await state_of(database)
    assert state.backoff_since is None and state.backoff_reason is None

    # and the next mismatch starts over at 30 s with a WARN
    caplog.clear()
    chain.state.faults.stuck.append(StuckRule(store_id=registry, generation=5, key=0))
    chain.write(registry, [insert("unit|u6", {})])
    chain.cycle()
    clock.advance(5)
    again = await sync_organization(services, ORG, clock=clock)
    assert again.result is SyncResult.BACKING_OFF
    assert len(backoff_records(caplog, logging.WARNING)) == 1
    assert (await state_of(database)).backoff_delay_seconds == 30


async def test_backoff_survives_a_restart(
    chain: Chain,
    database: Database,
    make_services: Callable[..., Services],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    # the entry is in the database: a new process (new Services) continues the episode
    await stuck_org(chain, database, generations=5, stuck_at=3)
    await sync_organization(make_services(), ORG, clock=clock)
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="services")
    clock.advance(30)
    await sync_organization(make_services(), ORG, clock=clock)
    assert backoff_records(caplog, logging.WARNING) == []
    assert (await state_of(database)).backoff_delay_seconds == 60
