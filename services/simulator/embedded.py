"""Run the simulator inside the current event loop: uvicorn over HTTPS plus a block timer.

```python
async with EmbeddedSimulator(data_dir=path, block_seconds=0.1, seed="none", keys=2) as sim:
    sim.datalayer_url(0)   # https://127.0.0.1:<port>/key/0/datalayer
    sim.wallet_url(1)      # https://127.0.0.1:<port>/key/1/wallet
    sim.ssl_folder(0)      # <data_dir>/keys/0/config/ssl (client certificates)
    sim.admin_url          # http://127.0.0.1:<admin port>/_simulator (loopback, no certificate)
```

The RPC listener requires a client certificate from the simulator's private CA (like Chia).
The admin routes are also served on a second, plain-HTTP loopback listener so scripts and
tests need no certificate for them (`admin_port=None` turns that listener off; the TLS
listener serves `/_simulator/...` too, with the certificate). Ports 0 pick free ports; the
bound ports are read back. The state is saved to `<data_dir>/chain.sqlite3` at most about
once a second and at stop, and `<data_dir>/runtime.json` tells the CLI where we listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
from collections.abc import Generator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn

from services.simulator.app import create_simulator_app
from services.simulator.faults import Faults
from services.simulator.persistence import SqlitePersistence, open_state
from services.simulator.state import SeedName, SimulatorConfig, SimulatorState
from services.simulator.tls import SslLayout, ensure_certificates

FAULTS_ENV = "CADT_SIMULATOR_FAULTS"
RUNTIME_FILE = "runtime.json"
_SAVE_INTERVAL_SECONDS = 1.0
logger = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto is TCP,
    # and without it every keep-alive answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def faults_from_env() -> Faults | None:
    """Faults given as JSON in CADT_SIMULATOR_FAULTS, if set."""
    raw = os.environ.get(FAULTS_ENV, "").strip()
    return Faults.model_validate_json(raw) if raw else None


class EmbeddedSimulator:
    """The simulator as an async context manager; see the module docstring."""

    _active_dirs: set[Path] = set()  # noqa: RUF012 - shared on purpose: one chain per dir

    def __init__(
        self,
        data_dir: Path | str,
        *,
        block_seconds: float = 2.0,
        seed: SeedName | str = "demo",
        keys: int = 3,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_port: int | None = 0,
        manage_data_blocks: int = 2,
        mirror_backoff_seconds: float = 300.0,
        faults: Faults | Mapping[str, Any] | str | None = None,
        log_level: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        if seed not in ("demo", "none"):
            raise ValueError("seed must be 'demo' or 'none'")
        self.config = SimulatorConfig(
            keys=keys,
            block_seconds=block_seconds,
            manage_data_blocks=manage_data_blocks,
            seed="demo" if seed == "demo" else "none",
            mirror_backoff_seconds=mirror_backoff_seconds,
        )
        self.host = host
        self._requested_port = port
        self._requested_admin_port = admin_port
        self._faults = self._parse_faults(faults)
        self._log_level = log_level
        self._state: SimulatorState | None = None
        self._persistence: SqlitePersistence | None = None
        self._layout: SslLayout | None = None
        self._servers: list[_QuietServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0
        self.admin_port: int | None = None

    @staticmethod
    def _parse_faults(faults: Faults | Mapping[str, Any] | str | None) -> Faults:
        if faults is None:
            return faults_from_env() or Faults()
        if isinstance(faults, Faults):
            return faults
        if isinstance(faults, str):
            return Faults.model_validate_json(faults)
        return Faults.model_validate(dict(faults))

    # ------------------------------------------------------------------ addresses
    @property
    def state(self) -> SimulatorState:
        """The live chain (only while running)."""
        if self._state is None:
            raise RuntimeError("the simulator is not running")
        return self._state

    @property
    def layout(self) -> SslLayout:
        """Where the certificates are."""
        if self._layout is None:
            raise RuntimeError("the simulator is not running")
        return self._layout

    @property
    def base_url(self) -> str:
        """https://host:port of the RPC listener."""
        return f"https://{_format_host(self.host)}:{self.port}"

    def datalayer_url(self, key: int = 0) -> str:
        """DataLayer RPC base URL of key `key` (append /<method>)."""
        return f"{self.base_url}/key/{key}/datalayer"

    def wallet_url(self, key: int = 0) -> str:
        """Wallet RPC base URL of key `key` (append /<method>)."""
        return f"{self.base_url}/key/{key}/wallet"

    def ssl_folder(self, key: int = 0) -> Path:
        """The CHIA_ROOT/config/ssl-like folder with key `key`'s client certificates."""
        return self.layout.ssl_folder(key)

    def chia_root(self, key: int = 0) -> Path:
        """A CHIA_ROOT-like folder for key `key`."""
        return self.layout.chia_root(key)

    def client_cert(self, key: int = 0, service: str = "datalayer") -> tuple[Path, Path]:
        """(certificate, key) files of a client of `service` of key `key`."""
        return self.layout.client_pair(key, service)

    @property
    def ca_cert(self) -> Path:
        """The private CA certificate (verify the server with it if you like)."""
        return self.layout.ca_cert

    @property
    def admin_url(self) -> str:
        """Base URL of the admin routes (plain HTTP listener when enabled)."""
        if self.admin_port is not None:
            return f"http://{_format_host(self.host)}:{self.admin_port}/_simulator"
        return f"{self.base_url}/_simulator"

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Create certificates and state, listen, and start the block timer."""
        if self._state is not None:
            raise RuntimeError("the simulator is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_shared_data_dir()
        state, persistence = open_state(self.data_dir, self.config, faults=self._faults)
        self._state, self._persistence = state, persistence
        EmbeddedSimulator._active_dirs.add(self.data_dir)
        self._layout = await asyncio.to_thread(ensure_certificates, self.data_dir, len(state.keys))
        try:
            tls_socket = _bind(self.host, self._requested_port)
            self.port = tls_socket.getsockname()[1]
            await self._serve(create_simulator_app(state), tls_socket, tls=True)
            if self._requested_admin_port is not None:
                admin_socket = _bind(self.host, self._requested_admin_port)
                self.admin_port = admin_socket.getsockname()[1]
                await self._serve(
                    create_simulator_app(state, admin_only=True), admin_socket, tls=False
                )
        except BaseException:
            await self.stop()
            raise
        self._ticker = asyncio.create_task(self._run_blocks(), name="cadt-simulator-blocks")
        self._write_runtime()

    async def _serve(self, app: Any, sock: socket.socket, *, tls: bool) -> None:
        layout = self.layout
        options: dict[str, Any] = {}
        if tls:
            options = {
                "ssl_certfile": str(layout.server_cert),
                "ssl_keyfile": str(layout.server_key),
                "ssl_ca_certs": str(layout.ca_cert),
                "ssl_cert_reqs": ssl.CERT_REQUIRED,
            }
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            # None keeps uvicorn from resetting the host's "uvicorn.*" logger levels.
            log_level=self._log_level,
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=2,
            **options,
        )
        config.load()
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="cadt-simulator-http")
        self._servers.append(server)
        self._tasks.append(task)
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the simulator's HTTP server stopped during start-up")
            await asyncio.sleep(0.005)

    async def _run_blocks(self) -> None:
        state = self.state
        loop = asyncio.get_running_loop()
        interval = self.config.block_seconds
        next_block = loop.time() + interval
        last_save = loop.time()
        while True:
            await asyncio.sleep(max(0.0, next_block - loop.time()))
            # A stalled loop should not farm a burst of catch-up blocks.
            next_block = max(next_block + interval, loop.time())
            try:
                if state.auto_farm:
                    state.farm_block()
                if (
                    self._persistence is not None
                    and loop.time() - last_save >= _SAVE_INTERVAL_SECONDS
                ):
                    self._persistence.save(state)
                    last_save = loop.time()
            except Exception:
                logger.exception("simulator block failed")

    async def stop(self) -> None:
        """Stop the timer and the listeners, then save the chain."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for server in self._servers:
            server.should_exit = True
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._servers.clear()
        self._tasks.clear()
        if self._persistence is not None and self._state is not None:
            self._persistence.save(self._state, force=True)
            self._persistence.close()
        if self._state is not None:
            EmbeddedSimulator._active_dirs.discard(self.data_dir)
        self._persistence = None
        self._state = None
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / RUNTIME_FILE).unlink()

    def _refuse_shared_data_dir(self) -> None:
        # Two simulators writing one chain.sqlite3 would corrupt each other's chain.
        if self.data_dir in EmbeddedSimulator._active_dirs:
            raise RuntimeError(f"a simulator is already running on {self.data_dir}")
        runtime = self.data_dir / RUNTIME_FILE
        try:
            pid = int(json.loads(runtime.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if pid == os.getpid():
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        raise RuntimeError(f"another simulator (pid {pid}) is running on {self.data_dir}")

    def _write_runtime(self) -> None:
        info = {
            "pid": os.getpid(),
            "port": self.port,
            "admin_port": self.admin_port,
            "admin_url": self.admin_url,
            "keys": len(self.state.keys),
            "datalayer_urls": [self.datalayer_url(k) for k in range(len(self.state.keys))],
            "wallet_urls": [self.wallet_url(k) for k in range(len(self.state.keys))],
            "ssl_folders": [str(self.ssl_folder(k)) for k in range(len(self.state.keys))],
        }
        (self.data_dir / RUNTIME_FILE).write_text(json.dumps(info, indent=2))
