"""Fixtures for the simulator tests: a running EmbeddedSimulator and HTTPS clients per key.

Every test talks to the simulator over real HTTPS with the generated client certificates.
Blocks come every 0.05 s; tests that need a frozen chain pause auto-farming through the admin
route and farm blocks themselves. Waits poll with a deadline derived from the block time.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.simulator import EmbeddedSimulator

BLOCK_SECONDS = 0.05
#: Generous for CI, still short: a condition that needs a few blocks shows up well before it.
DEADLINE_SECONDS = 200 * BLOCK_SECONDS


def client_context(sim: EmbeddedSimulator, key: int, service: str) -> ssl.SSLContext:
    """Mutual-TLS context with the key's client certificate, server check off (like Chia)."""
    # No system CA bundle: loading it costs ~50 ms per context and nothing here needs it.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    cert, private_key = sim.client_cert(key, service)
    context.load_cert_chain(cert, private_key)
    return context


class Node:
    """One simulated key seen as a Chia node: its DataLayer and Wallet RPC over HTTPS."""

    def __init__(self, sim: EmbeddedSimulator, key: int) -> None:
        self.sim = sim
        self.key = key
        self._dl = httpx.AsyncClient(
            base_url=sim.datalayer_url(key),
            verify=client_context(sim, key, "datalayer"),
            timeout=10,
            trust_env=False,
        )
        self._wallet = httpx.AsyncClient(
            base_url=sim.wallet_url(key),
            verify=client_context(sim, key, "wallet"),
            timeout=10,
            trust_env=False,
        )

    async def dl(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a DataLayer method; the JSON body of the answer."""
        response = await self._dl.post(f"/{method}", json=body or {})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def wallet(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a Wallet method; the JSON body of the answer."""
        response = await self._wallet.post(f"/{method}", json=body or {})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def ok(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A DataLayer call that must succeed."""
        data = await self.dl(method, body)
        assert data["success"] is True, data
        return data

    async def raw_dl(self, method: str, content: bytes) -> httpx.Response:
        """POST raw bytes to a DataLayer method."""
        return await self._dl.post(f"/{method}", content=content)

    async def aclose(self) -> None:
        """Close both clients."""
        await self._dl.aclose()
        await self._wallet.aclose()


class Admin:
    """The plain-HTTP admin routes."""

    def __init__(self, sim: EmbeddedSimulator) -> None:
        self.http = httpx.AsyncClient(base_url=sim.admin_url, timeout=10, trust_env=False)

    async def farm(self, blocks: int = 1) -> int:
        """Farm blocks now; the new height."""
        response = await self.http.post("/farm", json={"blocks": blocks})
        response.raise_for_status()
        height: int = response.json()["height"]
        return height

    async def auto_farm(self, enabled: bool) -> None:
        """Pause or resume the block timer."""
        (await self.http.post("/auto_farm", json={"enabled": enabled})).raise_for_status()

    async def cycle(self, key: int | None = None) -> None:
        """Run manage-data cycles now."""
        (await self.http.post("/cycle", json={"key": key})).raise_for_status()

    async def faults(self, **faults: Any) -> dict[str, Any]:
        """Merge fault switches."""
        response = await self.http.post("/faults", json=faults)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def set_faults(self, faults: dict[str, Any]) -> dict[str, Any]:
        """Replace all fault switches."""
        response = await self.http.put("/faults", json=faults)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def state(self) -> dict[str, Any]:
        """The state summary."""
        response = await self.http.get("/state")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


async def wait_until(
    condition: Callable[[], Awaitable[Any]], *, within: float = DEADLINE_SECONDS
) -> Any:
    """Poll `condition` until it returns a truthy value; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within:.1f}s")
        await asyncio.sleep(BLOCK_SECONDS / 4)


@pytest.fixture
def sim_dir(tmp_path: Path) -> Path:
    """The simulator's data dir."""
    return tmp_path / "simulator"


def pytest_configure(config: pytest.Config) -> None:
    """Register the `sim` marker (keyword arguments for the EmbeddedSimulator fixture)."""
    config.addinivalue_line("markers", "sim(**options): EmbeddedSimulator options for `sim`")


@pytest.fixture
async def sim(sim_dir: Path, request: pytest.FixtureRequest) -> AsyncIterator[EmbeddedSimulator]:
    """A running simulator: 3 keys, no seed, fast blocks (override with @pytest.mark.sim)."""
    options: dict[str, Any] = {
        "block_seconds": BLOCK_SECONDS,
        "seed": "none",
        "keys": 3,
        "faults": {},
    }
    marker = request.node.get_closest_marker("sim")
    if marker is not None:
        options.update(marker.kwargs)
    async with EmbeddedSimulator(sim_dir, **options) as simulator:
        yield simulator


@pytest.fixture
async def admin(sim: EmbeddedSimulator) -> AsyncIterator[Admin]:
    """Admin client of `sim`."""
    client = Admin(sim)
    yield client
    await client.http.aclose()


@pytest.fixture
async def node0(sim: EmbeddedSimulator) -> AsyncIterator[Node]:
    """Key 0: the local (subscriber) node."""
    node = Node(sim, 0)
    yield node
    await node.aclose()


@pytest.fixture
async def node1(sim: EmbeddedSimulator) -> AsyncIterator[Node]:
    """Key 1: the owner node."""
    node = Node(sim, 1)
    yield node
    await node.aclose()


@pytest.fixture
async def manual(admin: Admin) -> Admin:
    """The admin client with auto-farming paused: blocks only when the test farms."""
    await admin.auto_farm(False)
    return admin


async def confirmed_root(node: Node, store_id: str) -> dict[str, Any] | None:
    """get_root when it succeeds, else None."""
    data = await node.dl("get_root", {"id": store_id})
    return data if data["success"] else None


async def create_store(node: Node, admin: Admin, *, fee: int = 0) -> str:
    """Create a store and farm until it is confirmed."""
    store_id: str = (await node.ok("create_data_store", {"fee": fee}))["id"]
    await admin.farm()
    assert await confirmed_root(node, store_id)
    return store_id


async def write(node: Node, admin: Admin, store_id: str, changelist: list[dict[str, Any]]) -> str:
    """batch_update and farm one block; the new root hash (0x)."""
    await node.ok("batch_update", {"id": store_id, "changelist": changelist, "fee": 0})
    await admin.farm()
    root = await confirmed_root(node, store_id)
    assert root is not None
    hash_: str = root["hash"]
    return hash_


def hx(text: str) -> str:
    """UTF-8 text as hex."""
    return text.encode().hex()
