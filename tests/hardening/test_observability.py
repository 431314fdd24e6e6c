"""Health routes, Prometheus metrics, request ids in and out, job ids in job logs."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import httpx
import pytest
from arq.worker import func

from cadt_gateway.logs import ContextFilter, JsonFormatter
from cadt_gateway.metrics import instrument_worker, serve_worker_metrics


async def test_healthz_is_liveness_and_readyz_checks_database_redis_and_worker(
    start_node: Any, node_settings: Any
) -> None:
    node = await start_node(node_settings(), run_worker=False)
    assert (await node.http.get("/healthz")).json() == {"status": "ok"}
    response = await node.http.get("/readyz")
    body = response.json()
    assert set(body) == {"ready", "database", "redis", "worker"}
    assert body["database"]["state"] == "UP" and body["redis"]["state"] == "UP"
    # No worker heartbeat on this Redis: not ready (503), says why.
    assert response.status_code == 503 and body["ready"] is False
    assert body["worker"]["state"] == "DOWN"


async def test_readyz_is_ready_with_a_worker(node: Any) -> None:
    async with asyncio.timeout(30):
        response = await node.http.get("/readyz")
        while response.status_code != 200:  # the worker's first heartbeat
            await asyncio.sleep(0.05)
            response = await node.http.get("/readyz")
    assert response.json()["ready"] is True


async def test_metrics_exposition_names_every_family(node: Any) -> None:
    await node.execute("query DashboardProbe { __typename }")
    await node.execute("{ nope }", expect_errors=True)
    job = await node.services.queue.enqueue("ping")
    assert job is not None
    text = ""
    async with asyncio.timeout(30):
        while 'cadt_jobs_total{function="ping",outcome="success"}' not in text:
            response = await node.http.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            text = response.text
            await asyncio.sleep(0.05)
    for name in (
        'cadt_graphql_operations_total{name="DashboardProbe",type="query"}',
        "cadt_graphql_operation_duration_seconds_bucket",
        "cadt_graphql_errors_total",
        "cadt_http_requests_total",
        'cadt_job_duration_seconds_count{function="ping"}',
        "cadt_jobs_in_progress",
        "cadt_websocket_connections",
        "cadt_event_subscribers",
        "cadt_operation_lock_held_seconds",
        "cadt_worker_heartbeats",
        "cadt_sync_generations_behind",
        "process_cpu_seconds_total",
    ):
        assert name in text, name


async def test_metrics_can_be_turned_off(start_node: Any, node_settings: Any) -> None:
    node = await start_node(node_settings(metrics=False), run_worker=False)
    assert (await node.http.get("/metrics")).status_code == 404


async def test_request_id_is_echoed_generated_and_logged(
    node: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resolvers.health

    async def logging_health(info: Any) -> Any:
        logging.getLogger("tests.request").warning("inside the resolver")
        raise RuntimeError("boom")

    monkeypatch.setattr(resolvers.health, "health", logging_health)
    caplog.handler.addFilter(ContextFilter())
    response = await node.http.post(
        "/graphql", json={"query": "{ health { ok } }"}, headers={"x-request-id": "req-42.a"}
    )
    assert response.headers["x-request-id"] == "req-42.a"
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "req-42.a"]
    names = {record.name for record in records}
    assert {"tests.request", "cadt_gateway.graphql"} <= names  # ours and the error report
    line = JsonFormatter().format(records[0])
    assert '"request_id": "req-42.a"' in line
    generated = await node.http.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert generated.headers["x-request-id"] != "bad id\twith spaces"
    assert len(generated.headers["x-request-id"]) == 32


async def test_job_runs_log_their_job_id(caplog: pytest.LogCaptureFixture) -> None:
    async def work(ctx: dict[str, Any]) -> str:
        logging.getLogger("tests.job").warning("working")
        return "done"

    options = instrument_worker({"functions": [func(work, name="work")]})
    caplog.handler.addFilter(ContextFilter())
    result = await options["functions"][0].coroutine({"job_id": "job-7"})
    assert result == "done"
    record = next(r for r in caplog.records if r.name == "tests.job")
    assert record.job_id == "job-7" and record.job_function == "work"


def test_worker_metrics_port_serves_the_registry() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve_worker_metrics(port, "127.0.0.1")
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert "cadt_jobs_total" in response.text or "cadt_job_duration_seconds" in response.text
