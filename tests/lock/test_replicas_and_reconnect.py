"""Several replicas on one Redis, and a Redis pub/sub reconnect: snapshots keep clients right."""

from __future__ import annotations

import psutil

from services.creation_state import CreationRecord, CreationState
from services.progress import publish_creation_status
from tests.lock.conftest import save_creation, wait_for, ws_session

PROGRESS = "subscription { operationProgress { kind status orgUid } }"
CREATION = "subscription { creationStatus { inProgress state liveStatus { status } } }"


async def test_an_operation_on_one_replica_streams_to_clients_of_another(serve_node, node_settings):
    worker_side = await serve_node(node_settings())
    client_side = await serve_node(node_settings())
    lock = worker_side.services.lock

    async with ws_session(client_side.ws_url) as session:
        await session.init()
        await session.subscribe("p", PROGRESS)
        await session.subscribe("c", CREATION)
        assert (await session.next("c"))["creationStatus"]["inProgress"] is False

        token = await lock.try_acquire("V2 organization creation")
        seen = {"p": [], "c": []}

        async def collect(count_p: int, count_c: int) -> None:
            while len(seen["p"]) < count_p or len(seen["c"]) < count_c:
                message = await session.receive()
                assert message["type"] == "next", message
                seen[message["id"]].append(message["payload"]["data"])

        await collect(1, 1)
        await lock.update_status(token, "Creating stores", org_uid="cd" * 32)
        await collect(2, 2)
        record = CreationRecord(
            state=CreationState.STORES_CREATING,
            name="Org",
            icon=None,
            data_version="v2",
            api_version="v2",
        )
        await save_creation(worker_side.services, record)
        await publish_creation_status(worker_side.services)
        await collect(2, 3)
        await lock.release(token)
        await collect(3, 4)

    assert [e["operationProgress"] for e in seen["p"]] == [
        {"kind": "STARTED", "status": "Starting...", "orgUid": None},
        {"kind": "PROGRESS", "status": "Creating stores", "orgUid": "cd" * 32},
        {"kind": "FINISHED", "status": "Creating stores", "orgUid": "cd" * 32},
    ]
    assert [e["creationStatus"] for e in seen["c"]] == [
        {"inProgress": True, "state": None, "liveStatus": {"status": "Starting..."}},
        {"inProgress": True, "state": None, "liveStatus": {"status": "Creating stores"}},
        {
            "inProgress": True,
            "state": "STORES_CREATING",
            "liveStatus": {"status": "Creating stores"},
        },
        {"inProgress": True, "state": "STORES_CREATING", "liveStatus": None},
    ]


async def _kill_our_pubsub_connections(redis_client) -> int:
    """CLIENT KILL the pub/sub connections of this process only (others may share the Redis)."""
    ours = {
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == redis_client.connection_pool.connection_kwargs["port"]
    }
    killed = 0
    for client in await redis_client.client_list(_type="pubsub"):
        if client["addr"] in ours:
            killed += await redis_client.execute_command("CLIENT KILL", "ID", client["id"])
    return killed


async def test_a_pubsub_reconnect_yields_a_fresh_snapshot(live, redis_client):
    services = live.services
    lock = services.lock
    token = await lock.try_acquire("V2 organization creation")

    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("p", PROGRESS)
        await session.subscribe("c", CREATION)
        snapshots = {}
        while len(snapshots) < 2:
            message = await session.receive()
            snapshots[message["id"]] = message["payload"]["data"]

        assert await _kill_our_pubsub_connections(redis_client) >= 1
        # Published while the hub is away: lost for pub/sub, recovered from the snapshot.
        await lock.update_status(token, "Changed while disconnected")
        record = CreationRecord(
            state=CreationState.DATA_PUSHING,
            name="Org",
            icon=None,
            data_version="v2",
            api_version="v2",
        )
        await save_creation(services, record)
        await publish_creation_status(services)

        fresh = {}
        while len(fresh) < 2:
            message = await session.receive()
            assert message["type"] == "next", message
            fresh.setdefault(message["id"], message["payload"]["data"])

    assert fresh["p"]["operationProgress"] == {
        "kind": "PROGRESS",
        "status": "Changed while disconnected",
        "orgUid": None,
    }
    assert fresh["c"]["creationStatus"] == {
        "inProgress": True,
        "state": "DATA_PUSHING",
        "liveStatus": {"status": "Changed while disconnected"},
    }
    await lock.release(token)


async def test_an_end_missed_during_a_reconnect_is_reported(live, redis_client):
    lock = live.services.lock
    token = await lock.try_acquire("V1 to V2 upgrade")
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("p", PROGRESS)
        assert (await session.next("p"))["operationProgress"]["kind"] == "STARTED"
        assert await _kill_our_pubsub_connections(redis_client) >= 1
        await lock.release(token)
        next_token = await lock.try_acquire("V2 organization creation")
        ended = (await session.next("p"))["operationProgress"]
        current = (await session.next("p"))["operationProgress"]
    assert ended["kind"] == "FINISHED"
    assert (current["kind"], current["status"]) == ("STARTED", "Starting...")
    await lock.release(next_token)
    await wait_for(lambda: live.services.events.subscriber_count == 0)
