"""The embedded demo: with nothing configured a node follows the simulator's seeded body.

Only the data dir and a short simulator block time are set: embedded Redis, SQLite, the
built-in simulator with its demo seed, and CADT_GOVERNANCE_BODY_ID defaulting to the demo body.
Every interval keeps its default; the promise is "within a minute of start".
"""

from __future__ import annotations

import time
from typing import Any

from services.simulator import DEMO_GOVERNANCE_BODY_ID, DEMO_GOVERNANCE_VERSION_STORE_ID
from services.simulator.seed import DEMO_ORG_UIDS, DEMO_ORGANIZATIONS, GLOSSARY, PICK_LIST
from tests.governance.conftest import eventually, governance_of

WITHIN_SECONDS = 60.0


async def test_the_demo_body_and_its_organizations_appear_within_a_minute(
    start_node: Any, make_settings: Any
):
    started = time.monotonic()
    node = await start_node(make_settings(simulator_block_seconds=0.1))

    values = await eventually(
        lambda: governance_of(node),
        lambda g: (
            [entry["orgUid"] for entry in g["orgList"]] == list(DEMO_ORG_UIDS)
            and g["pickList"] == PICK_LIST
            and g["glossary"] == GLOSSARY
        ),
        within=WITHIN_SECONDS,
        interval=0.1,
    )
    assert values["bodyId"] == DEMO_GOVERNANCE_BODY_ID
    assert values["versionStoreId"] == DEMO_GOVERNANCE_VERSION_STORE_ID
    assert values["isGovernanceBody"] is False
    assert values["confirmed"] is True

    remaining = WITHIN_SECONDS - (time.monotonic() - started)
    synced = await eventually(
        lambda: governance_of(node),
        lambda g: all(
            entry["organization"] is not None and entry["organization"]["sync"]["synced"]
            for entry in g["orgList"]
        ),
        within=max(remaining, 1.0),
        interval=0.1,
    )
    names = [entry["organization"]["name"] for entry in synced["orgList"]]
    assert names == [org.name for org in DEMO_ORGANIZATIONS]
