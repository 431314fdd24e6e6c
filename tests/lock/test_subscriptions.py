"""operationProgress and creationStatus over a real graphql-transport-ws WebSocket (uvicorn)."""

from __future__ import annotations

from services.creation_state import CreationRecord, CreationState
from services.events import CREATION_CHANNEL, wire_channel
from services.progress import publish_creation_status
from tests.lock.conftest import save_creation, wait_for, ws_session

PROGRESS = (
    "subscription { operationProgress { kind operation label status startedAt elapsedSeconds "
    "at error orgUid } }"
)
CREATION = (
    "subscription { creationStatus { inProgress state message progress "
    "liveStatus { label status } } }"
)
ORG_UID = "ab" * 32


async def test_late_subscriber_gets_the_snapshot_first_then_every_change(live):
    lock = live.services.lock
    token = await lock.try_acquire("V2 organization creation")
    await lock.update_status(token, "Creating stores on blockchain")

    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("p", PROGRESS)
        snapshot = (await session.next("p"))["operationProgress"]
        assert snapshot["kind"] == "PROGRESS"
        assert snapshot["operation"] == "CREATE_HOME_ORGANIZATION"
        assert snapshot["label"] == "V2 organization creation"
        assert snapshot["status"] == "Creating stores on blockchain"
        assert snapshot["orgUid"] is None and snapshot["error"] is None

        await lock.update_status(token, "Waiting for confirmation", org_uid=ORG_UID)
        step = (await session.next("p"))["operationProgress"]
        assert (step["kind"], step["status"], step["orgUid"]) == (
            "PROGRESS",
            "Waiting for confirmation",
            ORG_UID,
        )
        assert step["startedAt"] == snapshot["startedAt"]
        assert step["at"] >= snapshot["startedAt"]

        await lock.release(token, error="Failed to create stores: RpcError")
        failed = (await session.next("p"))["operationProgress"]
        assert failed["kind"] == "FAILED"
        assert failed["error"] == "Failed to create stores: RpcError"
        assert failed["orgUid"] == ORG_UID

        second = await lock.try_acquire("V1 to V2 upgrade")
        started = (await session.next("p"))["operationProgress"]
        assert (started["kind"], started["status"], started["operation"]) == (
            "STARTED",
            "Starting...",
            "UPGRADE_HOME_ORGANIZATION",
        )
        await lock.release(second)
        finished = (await session.next("p"))["operationProgress"]
        assert (finished["kind"], finished["error"]) == ("FINISHED", None)


async def test_a_fresh_holder_is_a_started_snapshot_and_a_free_lock_yields_nothing(live):
    lock = live.services.lock
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("free", PROGRESS)
        # Nothing is sent for a free lock; the first message is the next acquisition.
        token = await lock.try_acquire("V2 organization creation")
        first = (await session.next("free"))["operationProgress"]
        assert (first["kind"], first["status"]) == ("STARTED", "Starting...")

        await session.subscribe("late", PROGRESS)
        late = (await session.next("late"))["operationProgress"]
        assert (late["kind"], late["status"]) == ("STARTED", "Starting...")
        await lock.release(token)


async def test_creation_status_stream_snapshot_then_one_value_per_change(live):
    services = live.services
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("c", CREATION)
        idle = (await session.next("c"))["creationStatus"]
        assert idle == {
            "inProgress": False,
            "state": None,
            "message": "No organization creation in progress",
            "progress": 0,
            "liveStatus": None,
        }

        token = await services.lock.try_acquire("V2 organization creation")
        held = (await session.next("c"))["creationStatus"]
        assert held["inProgress"] is True
        assert held["liveStatus"] == {"label": "V2 organization creation", "status": "Starting..."}

        record = CreationRecord(
            state=CreationState.INITIALIZING,
            name="Org",
            icon=None,
            data_version="v2",
            api_version="v2",
        )
        await save_creation(services, record)
        await publish_creation_status(services)
        saved = (await session.next("c"))["creationStatus"]
        assert (saved["state"], saved["message"]) == (
            "INITIALIZING",
            "Initializing organization creation",
        )

        # A publish of an unchanged state yields nothing; the next change comes next.
        await publish_creation_status(services)
        await services.redis.publish(wire_channel(services.redis, CREATION_CHANNEL), "{}")
        record.state = CreationState.STORES_CONFIRMED
        await save_creation(services, record)
        await publish_creation_status(services)
        confirmed = (await session.next("c"))["creationStatus"]
        assert (confirmed["state"], confirmed["progress"]) == ("STORES_CONFIRMED", 50)

        await services.lock.update_status(token, "Writing data")
        step = (await session.next("c"))["creationStatus"]
        assert step["liveStatus"]["status"] == "Writing data"

        await services.lock.release(token)
        released = (await session.next("c"))["creationStatus"]
        assert released["liveStatus"] is None
        assert released["state"] == "STORES_CONFIRMED"

        # The client stops: the server completes the operation and keeps the socket.
        await session.send({"id": "c", "type": "complete"})
        await session.send({"type": "ping"})
        assert (await session.receive())["type"] == "pong"
    # Both hub queues of the stream are gone once the client stopped (no leak per client).
    await wait_for(lambda: services.events.subscriber_count == 0)


async def test_publish_creation_status_drops_identical_publishes(live, redis_client):
    services = live.services
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(wire_channel(redis_client, CREATION_CHANNEL))
    try:
        await publish_creation_status(services)
        await publish_creation_status(services)
        record = CreationRecord(
            state=CreationState.FINALIZING,
            name="Org",
            icon=None,
            data_version="v2",
            api_version="v2",
        )
        await save_creation(services, record)
        await publish_creation_status(services)
        received = []
        while len(received) < 2:
            message = await pubsub.get_message(timeout=10)
            if message is not None:
                received.append(message["data"])
        assert b'"state":null' in received[0] or b'"state": null' in received[0]
        assert b"FINALIZING" in received[1]
        await redis_client.publish(wire_channel(redis_client, CREATION_CHANNEL), "sentinel")
        while (message := await pubsub.get_message(timeout=10)) is None:
            pass
        assert message["data"] == b"sentinel"  # nothing was published in between
    finally:
        await pubsub.aclose()


async def test_creation_status_stream_reports_staleness_without_an_event(serve_node, node_settings):
    live = await serve_node(node_settings(creation_timeout_seconds=1.0))
    record = CreationRecord(
        state=CreationState.STORES_CREATING,
        name="Org",
        icon=None,
        data_version="v2",
        api_version="v2",
    )
    await save_creation(live.services, record)
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("c", CREATION)
        running = (await session.next("c"))["creationStatus"]
        assert (running["inProgress"], running["state"]) == (True, "STORES_CREATING")
        # Nothing is published: the stream itself notices the timeout passing.
        stale = (await session.next("c"))["creationStatus"]
        assert (stale["inProgress"], stale["progress"]) == (False, -1)
        assert stale["message"].startswith("Organization creation appears stale")
