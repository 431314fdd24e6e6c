"""Two app instances on one Redis and one database: a mutation on one, its progress on the other.

Node A (uvicorn on loopback, worker in-process) is sent createHomeOrganization over real HTTP;
node B (uvicorn on loopback, no worker) has a graphql-transport-ws client subscribed to
operationProgress before the mutation is sent. Everything the client sees was published by node
A's resolver and worker and reached node B only through Redis pub/sub: each app has its own
EventHub on its own Redis connection, and nobody subscribes on node A. Afterwards node B answers
homeOrganization with the organization the job created.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from services.home_organization.create import (
    STATUS_COINS,
    STATUS_COMPLETE,
    STATUS_CONFIRMING,
    STATUS_CREATING,
    STATUS_FINALIZING,
    STATUS_WRITING,
)
from services.oplock import INITIAL_STATUS
from tests.faults import conftest as faults
from tests.lock.conftest import Session, wait_for, ws_session

# The fault harness's fixtures, overriding this directory's serve_node (whose nodes never run
# the worker): uvicorn nodes with or without the in-process worker, and settings with every
# wait shrunk (FAULT_SETTINGS).
serve_node = faults.serve_node
fault_settings = faults.fault_settings

NAME = "Two Replicas Org"
LABEL = "V2 organization creation"
#: Bound of the whole creation as seen by the subscriber (it ends within seconds normally).
CREATION_DEADLINE = 60.0

CREATE = f"""
mutation {{
  createHomeOrganization(input: {{name: "{NAME}"}}) {{
    __typename
    ... on OperationAccepted {{ jobId operationStatus {{ operation label status }} }}
    ... on Error {{ message code }}
  }}
}}
"""
PROGRESS = "subscription { operationProgress { kind operation label status orgUid error } }"
HOME = "query { homeOrganization { orgUid name isHome dataModelVersion registryStoreId } }"


async def _events_until_the_creation_ends(session: Session, op_id: str) -> list[dict[str, Any]]:
    """operationProgress events of the creation, up to and including its FINISHED or FAILED."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(CREATION_DEADLINE):
        while True:
            event = (await session.next(op_id))["operationProgress"]
            if event["label"] != LABEL:
                continue  # another operation (none is expected; the recovery job skips)
            events.append(event)
            if event["kind"] in ("FINISHED", "FAILED"):
                return events


async def test_a_creation_on_one_replica_streams_to_a_subscriber_of_the_other(
    serve_node: Any,
    fault_settings: Any,
    redis_client: Any,  # the test Redis, emptied first (no lock or queue left from before)
) -> None:
    node_a = await serve_node(fault_settings(), run_worker=True)
    node_b = await serve_node(fault_settings(), run_worker=False)
    assert node_a.settings.redis_url == node_b.settings.redis_url
    assert node_a.settings.database_url == node_b.settings.database_url
    assert node_a.services.events is not node_b.services.events
    assert node_a.node.worker is not None and node_b.node.worker is None
    assert (await node_b.execute(HOME))["homeOrganization"] is None

    before = node_b.services.events.subscriber_count
    async with ws_session(node_b.ws_url) as session:
        await session.init()
        await session.subscribe("p", PROGRESS)
        # the subscription is attached to node B's hub (no message: nothing holds the lock)
        await wait_for(lambda: node_b.services.events.subscriber_count == before + 1)
        assert node_a.services.events.subscriber_count == 0

        accepted = (await node_a.execute(CREATE))["createHomeOrganization"]
        assert accepted["__typename"] == "OperationAccepted", accepted
        assert accepted["operationStatus"] == {
            "operation": "CREATE_HOME_ORGANIZATION",
            "label": LABEL,
            "status": INITIAL_STATUS,
        }

        events = await _events_until_the_creation_ends(session, "p")

    kinds = [event["kind"] for event in events]
    assert kinds[0] == "STARTED", events
    assert kinds[-1] == "FINISHED", events
    assert len(kinds) >= 3 and set(kinds[1:-1]) == {"PROGRESS"}, events
    assert {event["operation"] for event in events} == {"CREATE_HOME_ORGANIZATION"}
    assert events[0]["status"] == INITIAL_STATUS
    # every step of the job, in order (a step is repeated when the lock learns the orgUid)
    steps = [status for status, _ in itertools.groupby(event["status"] for event in events)]
    assert steps == [
        INITIAL_STATUS,
        STATUS_COINS,
        STATUS_CREATING,
        STATUS_CONFIRMING,
        STATUS_WRITING,
        STATUS_FINALIZING,
        STATUS_COMPLETE,
    ], events
    assert (events[-1]["status"], events[-1]["error"]) == (STATUS_COMPLETE, None)
    org_uid = events[-1]["orgUid"]
    assert org_uid is not None and len(org_uid) == 64, events

    home = (await node_b.execute(HOME))["homeOrganization"]
    assert home is not None
    assert (home["orgUid"], home["name"], home["isHome"], home["dataModelVersion"]) == (
        org_uid,
        NAME,
        True,
        "V2",
    )
    assert home["registryStoreId"] is not None
    assert (await node_a.execute(HOME))["homeOrganization"] == home
