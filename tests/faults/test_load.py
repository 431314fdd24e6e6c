"""A short load_mixed (bench/load_mixed.py) in the suite: zero errors under mixed load.

50 dashboard clients over real HTTP (uvicorn on loopback, the worker in-process) and 10
graphql-transport-ws subscribers (operationProgress + syncProgress) while createHomeOrganization
and a full resync of a 150-generation registry run. It asserts that nothing failed: every query
answered 200 without errors, every subscription stayed open, the creation and the resync
finished. Timing is the benchmark's business, never asserted here (the baseline windows are
one second of load each, a duration, not a wait).
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.load_mixed import IMPORT, all_synced, graphql, run_mixed_load, wait_for
from tests.organizations.conftest import make_remote_org

pytestmark = pytest.mark.slow

GENERATIONS = 150


async def test_mixed_load_has_zero_errors(
    serve_node: Any, fault_settings: Any, simulator: Any
) -> None:
    remotes = [make_remote_org(simulator, f"Remote {n}") for n in range(5)]
    big = make_remote_org(simulator, "Big Remote", registry_generations=GENERATIONS)
    # a heartbeat timeout of the default's order (not the 1.5 s of the other fault tests): a
    # loop this busy may miss a heartbeat for a second, and a takeover is not what this is
    # about; periodic jobs far enough apart that the node has quiet seconds to settle in
    live = await serve_node(
        fault_settings(
            lock_heartbeat_timeout_seconds=30,
            sync_registries_task_interval=2,
            mirror_check_task_interval=300,
            clean_up_failed_org_task_interval=60,
        )
    )
    organizations = [*remotes, big]
    for org in organizations:
        result = (await graphql(live.http, IMPORT, {"orgUid": org.org_uid}))["importOrganization"]
        assert result["__typename"] in ("OrganizationPayload", "Done"), result

    async def synced() -> bool:
        return await all_synced(live.http, len(organizations), GENERATIONS)

    await wait_for(synced, within=60, what="imports synced")

    run = await run_mixed_load(
        f"http://127.0.0.1:{live.port}",
        live.ws_url,
        clients=50,
        subscriber_count=10,
        big_org_uid=big.org_uid,
        expected_organizations=len(organizations),
        big_generations=GENERATIONS,
        baseline_seconds=1.0,
        mixed_max_seconds=60,
        think=(0.1, 0.3),
    )
    assert run.requests.errors == []
    assert run.subscriptions.errors == []
    assert run.background_errors == []
    # the load was real: queries in every window, every subscriber heard the resync
    for window in (*run.baselines, run.mixed):
        assert run.requests.latencies(window.start, window.end)
    assert run.subscriptions.connected == 10
    assert run.subscriptions.messages["s"] >= 10 and run.subscriptions.messages["p"] >= 10
