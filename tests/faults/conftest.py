"""Fault-injection harness: worker subprocesses, a private redis-server, a TCP switch, counters.

Everything a fault test breaks is its own: worker processes it starts and SIGKILLs, a
redis-server on a free port with an append-only file, a loopback TCP forwarder in front of the
simulator that it can cut and restore, and the test's own simulator. The machine's shared
PostgreSQL and the shared Redis on 6379 are never stopped (other suites use them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from pydantic import PrivateAttr, SecretStr

from cadt_gateway.app import create_app
from cadt_gateway.settings import Settings
from services.db.models import Audit, Mirror, Organization
from services.redis_keys import WORKER_HEALTH_PREFIX
from services.simulator.faults import Faults
from tests.home_organization.conftest import FAST
from tests.served import serve

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]

#: Upper bound of any wait in these tests: generous for a loaded 2-core machine; the normal
#: case returns as soon as the condition holds (every wait polls, none sleeps a constant).
DEADLINE = 60.0

#: Every wait and interval shrunk (on top of the home-organization tests' FAST values).
FAULT_SETTINGS: dict[str, Any] = {
    **FAST,
    "lock_heartbeat_seconds": 0.2,
    "lock_heartbeat_timeout_seconds": 1.5,
    "clean_up_failed_org_task_interval": 0.5,
    "worker_heartbeat_interval": 1,
    "sync_registries_task_interval": 0.3,
    "mirror_check_task_interval": 0.5,
    "rpc_retry_attempts": 2,
    "rpc_connect_timeout_seconds": 2,
}


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    within: float = DEADLINE,
    interval: float = 0.05,
    what: str = "condition",
    context: Callable[[], str] | None = None,
) -> T:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            extra = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"{what} not met within {within}s (last {value!r}){extra}")
        await asyncio.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------------- settings


@pytest.fixture
def fault_settings(node_settings: Any) -> Callable[..., Settings]:
    """node_settings (test database, test Redis, the simulator) with every wait shrunk."""

    def build(key: int = 0, **overrides: Any) -> Settings:
        settings: Settings = node_settings(key, **{**FAULT_SETTINGS, **overrides})
        return settings

    return build


def settings_env(settings: Settings) -> dict[str, str]:
    """The CADT_* environment that gives a subprocess exactly these settings."""
    env: dict[str, str] = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(str(item) for item in value)
        elif isinstance(value, (list, dict)):
            text = json.dumps(value)
        elif hasattr(value, "value"):  # enums
            text = str(value.value)
        else:
            text = str(value)
        env[f"CADT_{name.upper()}"] = text
    return env


# ---------------------------------------------------------------------------- worker processes


class WorkerProcess:
    """`cadt-gateway worker` in a subprocess; its output goes to a log file."""

    def __init__(self, settings: Settings, log_path: Path, cwd: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn the process (it reads only the environment, never a .env of the repo)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CADT_") or key.startswith("CADT_TEST_")
        }
        env.update(settings_env(self.settings))
        env["CADT_LOG_LEVEL"] = "info"
        env["PYTHONUNBUFFERED"] = "1"
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cadt_gateway.cli", "worker"],
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like an OOM kill or a power cut."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=DEADLINE)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 60) -> str:
        """The end of the worker's output (for failure messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, redis: Any, *, within: float = DEADLINE) -> None:
        """Wait until the worker polls the queue (its arq health key exists)."""

        async def ready() -> bool:
            assert self.alive(), f"worker exited early:\n{self.log_tail()}"
            keys = await redis.keys(f"{WORKER_HEALTH_PREFIX}*:{self.pid}:*")
            return bool(keys)

        await eventually(ready, within=within, what=f"worker {self.pid} ready")


@pytest.fixture
def worker_processes(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start `cadt-gateway worker` subprocesses; any still running is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(
            settings, tmp_path / f"worker-{len(started)}.log", tmp_path / "worker-cwd"
        )
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def worker_logs(workers: list[WorkerProcess]) -> str:
    """Every worker's recent output, for assertion messages."""
    return "\n".join(f"--- worker {w.pid} ---\n{w.log_tail()}" for w in workers)


# ---------------------------------------------------------------------------- private Redis


class PrivateRedis:
    """A redis-server of this test on a free port, persisting every write (appendfsync always)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, on the same port and data) and wait until it answers."""
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert self.process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server (what it wrote is in its append-only file)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)

    def stop(self) -> None:
        """Stop for good."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running redis-server of this test only (restartable)."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------- a TCP switch


class TcpSwitch:
    """A loopback TCP forwarder to `target`: `cut()` drops every connection and refuses new
    ones (a stopped service), `restore()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def up(self) -> bool:
        """True while connections are forwarded."""
        return self._server is not None

    async def restore(self) -> None:
        """Listen (again) on the same port."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def cut(self) -> None:
        """Close the listener and every forwarded connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            for each in (writer, upstream_writer):
                self._writers.discard(each)
                each.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


@pytest.fixture
async def tcp_switches() -> AsyncIterator[Callable[[int], Awaitable[TcpSwitch]]]:
    """Start TCP switches (forwarding at once); all are cut after the test."""
    switches: list[TcpSwitch] = []

    async def start(target_port: int) -> TcpSwitch:
        switch = TcpSwitch(target_port)
        await switch.restore()
        switches.append(switch)
        return switch

    yield start
    for switch in switches:
        await switch.cut()


def via(url: str, port: int) -> str:
    """`url` with its port replaced (to route an RPC URL through a switch)."""
    scheme, rest = url.split("://", 1)
    host_port, _, path = rest.partition("/")
    host = host_port.rsplit(":", 1)[0]
    return f"{scheme}://{host}:{port}/{path}"


# ---------------------------------------------------------------------------- the simulator


class SimulatorAdmin:
    """The simulator's admin routes over plain HTTP (what an operator's script would use)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(timeout=DEADLINE) as client:
            response = await client.request(method, f"{self.base_url}{path}", json=body)
        response.raise_for_status()
        return response.json()

    async def faults(self, **faults: Any) -> dict[str, Any]:
        """Merge fault switches (lists extend, maps update)."""
        result: dict[str, Any] = await self._call("POST", "/faults", faults)
        return result

    async def clear_faults(self) -> None:
        """Back to a healthy node."""
        await self._call("DELETE", "/faults")

    async def state(self) -> dict[str, Any]:
        """The state summary."""
        result: dict[str, Any] = await self._call("GET", "/state")
        return result

    async def owned_stores(self, key: int = 0) -> list[str]:
        """Store ids owned by `key` (created, confirmed or not)."""
        summary = await self.state()
        owned: list[str] = summary["keys"][key]["owned_stores"]
        return owned


@pytest.fixture
def admin(simulator: Any) -> SimulatorAdmin:
    """The test simulator's admin routes."""
    return SimulatorAdmin(simulator.admin_url)


# ---------------------------------------------------------------------------- counters


async def audit_counts(database: Any, registry_id: str) -> dict[int, int]:
    """Audit rows per generation of a registry."""
    async with database.session() as session:
        rows = await session.execute(
            sa.select(Audit.generation, sa.func.count())  # type: ignore[call-overload]
            .where(Audit.registry_id == registry_id)
            .group_by(Audit.generation)
        )
        return {int(generation): int(count) for generation, count in rows}


async def audit_duplicates(database: Any) -> list[tuple[Any, ...]]:
    """(registry, generation, change) appearing more than once: a duplicated audit row."""
    async with database.session() as session:
        rows = await session.execute(
            sa.select(Audit.registry_id, Audit.generation, Audit.change, sa.func.count())  # type: ignore[call-overload]
            .group_by(Audit.registry_id, Audit.generation, Audit.change)
            .having(sa.func.count() > 1)
        )
        return [tuple(row) for row in rows]


async def home_rows(database: Any) -> list[Organization]:
    """Every home organization row (the PENDING placeholder included)."""
    async with database.session() as session:
        rows = await session.execute(
            sa.select(Organization).where(Organization.is_home.is_(True))  # type: ignore[attr-defined]
        )
        return list(rows.scalars())


async def mirror_rows(database: Any) -> list[Mirror]:
    """The mirrors table."""
    async with database.session() as session:
        return list((await session.execute(sa.select(Mirror))).scalars())


def mirrors_per_store_url(simulator: Any) -> dict[tuple[str, str], int]:
    """Mirror coins on the simulated chain per (store, url), deletions excluded."""
    counts: dict[tuple[str, str], int] = {}
    for mirror in simulator.state.mirrors.values():
        if mirror.deleting:
            continue
        for url in mirror.urls:
            pair = (mirror.launcher_id, url.rstrip("/"))
            counts[pair] = counts.get(pair, 0) + 1
    return counts


class ArrivalFaults(Faults):
    """Fault switches that also count the calls that arrived (before their latency)."""

    _arrivals: list[str] = PrivateAttr(default_factory=list)

    def latency_for(self, service: Literal["datalayer", "wallet"], method: str) -> float:
        self._arrivals.append(method)
        return super().latency_for(service, method)

    def arrived(self, method: str) -> int:
        """How many calls of `method` reached the simulator."""
        return self._arrivals.count(method)


# ---------------------------------------------------------------------------- served nodes


@dataclass
class ServedNode:
    """A gateway app served by a real uvicorn on 127.0.0.1 (random port)."""

    app: Any
    port: int
    http: httpx.AsyncClient
    settings: Settings

    @property
    def services(self) -> Any:
        """The node's Services."""
        return self.app.state.node.services

    @property
    def node(self) -> Any:
        """The node (its worker, pool and services)."""
        return self.app.state.node

    @property
    def url(self) -> str:
        """The GraphQL endpoint over HTTP."""
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        """The graphql-transport-ws endpoint."""
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        """POST one operation; the raw response."""
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}})

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one operation; its data (fails on errors)."""
        response = await self.post(query, variables)
        body: dict[str, Any] = response.json()
        assert response.status_code == 200 and not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
async def serve_node(simulator: Any) -> AsyncIterator[Callable[..., Awaitable[ServedNode]]]:
    """Serve gateway apps with uvicorn on loopback (worker in-process unless told); all stop
    after the test, before the simulator."""
    async with AsyncExitStack() as stack:

        async def start(settings: Settings, *, run_worker: bool = True) -> ServedNode:
            app = create_app(settings, run_worker=run_worker)
            port = await serve(stack, app, deadline=DEADLINE)
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE)
            )
            return ServedNode(app=app, port=port, http=http, settings=settings)

        yield start


class SimulatorSwitch:
    """Stops the test simulator and starts it again on the same ports and data dir."""

    def __init__(self, simulator: Any) -> None:
        self.current = simulator
        self.started: list[Any] = []

    async def stop(self) -> None:
        """Stop it (its chain is saved to the data dir)."""
        await self.current.stop()

    async def start(self) -> Any:
        """Start it again where it was; the running simulator."""
        from services.simulator import EmbeddedSimulator

        previous = self.current
        again = EmbeddedSimulator(
            data_dir=previous.data_dir,
            block_seconds=previous.config.block_seconds,
            seed="none",
            keys=previous.config.keys,
            port=previous.port,
            admin_port=previous.admin_port,
        )
        await again.start()
        self.current = again
        self.started.append(again)
        return again


@pytest.fixture
async def simulator_switch(simulator: Any) -> AsyncIterator[SimulatorSwitch]:
    """Stop/start the test simulator (request it before start_node or serve_node: a restarted
    simulator must outlive the nodes that talk to it)."""
    switch = SimulatorSwitch(simulator)
    yield switch
    for each in switch.started:
        await each.stop()
