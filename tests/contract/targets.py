"""The two targets of the contract suite and the one adapter for what differs between them.

Both targets are driven through `services.chia` clients only. A target has an owner node and a
subscriber node (a DataLayer client and a Wallet client each) and knows how time passes on it:

- `SimulatorTarget`: the built-in simulator over real HTTPS, keys 0 (owner) and 1 (subscriber).
  Auto-farming and the timed manage-data cycles are off, so nothing happens between calls:
  `farm()` is the admin farm route and `tick()` runs one manage-data cycle on every key.
- `ChiaTarget`: the real chia-blockchain 2.7.5 owner and subscriber stacks that
  `tools/chia-sim/run-tests` starts (read from its environment variables). Auto-farming is
  turned off for the duration of a test and blocks are farmed with the full node's
  `farm_block`; manage-data cycles run every 5 s on their own, so `tick()` just lets time pass.

Everything a test waits for goes through `eventually` (poll a probe with a deadline) or
`confirm` (farm, then poll), so no test sleeps for a wall-clock constant.

URLs: `mirror_url` serves the owner's store files (the owner's `data_layer_http` on real Chia;
any URL on the simulator); `dead_url` never serves anything (nothing listens there on real
Chia; the simulator's `mirrors_down` fault on the simulator).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from services.chia import (
    ChiaBusinessError,
    ChiaClients,
    DataLayerClient,
    WalletClient,
    build_chia_clients,
)
from services.chia.models import Root, RootHistoryEntry

T = TypeVar("T")

#: The subscriber downloads from here on the simulator (the simulator does not fetch URLs).
SIMULATOR_MIRROR_URL = "http://127.0.0.1:8575"
#: Nothing listens on port 1: a download from here fails at once (connection refused).
DEAD_URL = "http://127.0.0.1:1"


@dataclass
class Node:
    """One Chia node as the gateway sees it: its DataLayer and Wallet clients."""

    name: str
    dl: DataLayerClient
    wallet: WalletClient

    @classmethod
    def connect(cls, name: str, *, datalayer_url: str, wallet_url: str, ssl_folder: Path) -> Node:
        """Clients with short transport retries (a test should fail fast, not retry for long)."""
        clients: ChiaClients = build_chia_clients(
            datalayer_url=datalayer_url,
            wallet_url=wallet_url,
            ssl_folder=ssl_folder,
            connect_timeout=5,
            datalayer_timeout=60,
            wallet_timeout=60,
            retry_attempts=2,
            retry_max_wait=0.5,
        )
        return cls(name, clients.datalayer, clients.wallet)

    async def aclose(self) -> None:
        """Close both clients."""
        await self.dl.aclose()
        await self.wallet.aclose()

    async def has_datalayer_wallet(self) -> bool:
        """The key already has its DataLayer wallet (type 11)."""
        wallets = (await self.wallet.get_wallets()).wallets
        return any(wallet.type == 11 for wallet in wallets)


class Target:
    """What the contract tests use; the subclasses differ only in how time passes."""

    name: str
    owner: Node
    subscriber: Node
    mirror_url: str
    dead_url: str = DEAD_URL
    #: Poll period and deadlines, seconds.
    poll_seconds: float
    confirm_within: float
    cycle_within: float

    # ------------------------------------------------------------------ what differs
    async def farm(self) -> None:
        """Farm one block (transactions in the mempool confirm)."""
        raise NotImplementedError

    async def tick(self) -> None:
        """Let DataLayer time pass between two polls (a manage-data cycle may run)."""
        raise NotImplementedError

    async def wait_published(self, store_id: str) -> None:
        """Wait until the owner's mirror serves the files of the store's newest generation."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Stop what the target started."""
        await self.owner.aclose()
        await self.subscriber.aclose()

    # ------------------------------------------------------------------ waiting
    async def eventually(
        self,
        probe: Callable[[], Awaitable[T | None]],
        *,
        what: str,
        within: float | None = None,
    ) -> T:
        """Poll `probe` (with `tick()` in between) until it returns something truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.cycle_within if within is None else within)
        last: Any = None
        while True:
            last = await probe()
            if last:
                return last
            if loop.time() > deadline:
                raise AssertionError(f"{self.name}: {what}: not reached in time (last: {last!r})")
            await self.tick()

    async def confirm(
        self, probe: Callable[[], Awaitable[T | None]], *, what: str, per_block: float = 2.0
    ) -> T:
        """Farm, then poll `probe` for a while; farm again if a transaction was not in the block."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_within
        last: Any = None
        while True:
            await self.farm()
            block_deadline = min(deadline, loop.time() + per_block)
            while True:
                last = await probe()
                if last:
                    return last
                if loop.time() > block_deadline:
                    break
                await asyncio.sleep(self.poll_seconds)
            if loop.time() > deadline:
                raise AssertionError(f"{self.name}: {what}: not confirmed (last: {last!r})")

    async def wait_confirmed(
        self, store_id: str, generation: int, node: Node | None = None
    ) -> Root:
        """Farm until `generation` of the store is the node's confirmed root (owner by default)."""
        node = node or self.owner

        async def confirmed() -> Root | None:
            try:
                history = await node.dl.get_root_history(store_id)
                root = await node.dl.get_root(store_id)
            except ChiaBusinessError:
                return None
            if len(history) == generation + 1 and root.hash == history[-1].root_hash:
                return root
            return None

        return await self.confirm(confirmed, what=f"generation {generation} of {store_id}")

    # ------------------------------------------------------------------ store helpers
    async def create_store(self) -> str:
        """A new, confirmed, empty store of the owner."""
        store_id = (await self.owner.dl.create_data_store(fee=0)).id
        await self.wait_confirmed(store_id, 0)
        return store_id

    async def write(self, store_id: str, changes: list[Any]) -> str:
        """batch_update on the owner and wait for the new root; its hash."""
        generation = len(await self.owner.dl.get_root_history(store_id))
        await self.owner.dl.batch_update(store_id, changes, fee=0)
        root = await self.wait_confirmed(store_id, generation)
        assert root.hash is not None
        return root.hash

    async def history(self, store_id: str, node: Node | None = None) -> list[RootHistoryEntry]:
        """The store's root history as `node` (owner by default) sees it."""
        return await (node or self.owner).dl.get_root_history(store_id)


# ---------------------------------------------------------------------------------- simulator
class SimulatorTarget(Target):
    """The built-in simulator (EmbeddedSimulator over HTTPS), blocks and cycles on demand."""

    name = "simulator"
    mirror_url = SIMULATOR_MIRROR_URL
    poll_seconds = 0.01
    confirm_within = 10.0
    cycle_within = 10.0

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.owner = Node.connect(
            "owner",
            datalayer_url=sim.datalayer_url(0),
            wallet_url=sim.wallet_url(0),
            ssl_folder=sim.ssl_folder(0),
        )
        self.subscriber = Node.connect(
            "subscriber",
            datalayer_url=sim.datalayer_url(1),
            wallet_url=sim.wallet_url(1),
            ssl_folder=sim.ssl_folder(1),
        )
        self.admin = httpx.AsyncClient(base_url=sim.admin_url, timeout=10, trust_env=False)

    async def start(self) -> None:
        """Freeze the chain: blocks only when a test farms, the dead URL always misses."""
        await self._admin("/auto_farm", {"enabled": False})
        await self._admin("/faults", {"mirrors_down": [self.dead_url]})

    async def _admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.admin.post(path, json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def farm(self) -> None:
        await self._admin("/farm", {"blocks": 1})

    async def tick(self) -> None:
        await self._admin("/cycle", {"key": None})

    async def wait_published(self, store_id: str) -> None:
        return None  # the simulator serves every confirmed generation at once

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.admin.aclose()


# ---------------------------------------------------------------------------------- real Chia
def _required_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(
            f"{name} is not set: run the real-Chia contract suite with `make test-chia` "
            "(tools/chia-sim/run-tests exports it)"
        )
    return value


class ChiaTarget(Target):
    """The real owner + subscriber stacks of tools/chia-sim, farming by hand."""

    name = "chia"
    poll_seconds = 0.2
    confirm_within = 60.0
    #: manage_data_interval is 5 s on both nodes; a download may need the owner's cycle first.
    cycle_within = 60.0

    def __init__(self) -> None:
        owner_root = Path(_required_env("CADT_CHIA_ROOT"))
        self.owner = Node.connect(
            "owner",
            datalayer_url=_required_env("CADT_DATALAYER_URL"),
            wallet_url=_required_env("CADT_WALLET_URL"),
            ssl_folder=owner_root / "config" / "ssl",
        )
        self.subscriber = Node.connect(
            "subscriber",
            datalayer_url=_required_env("SUB_DATALAYER_URL"),
            wallet_url=_required_env("SUB_WALLET_URL"),
            ssl_folder=Path(_required_env("SUB_CHIA_ROOT")) / "config" / "ssl",
        )
        self.mirror_url = _required_env("OWNER_DL_HTTP_URL")
        self.farming_address = _required_env("CHIA_SIM_FARMING_ADDRESS")
        # Any private_* pair of a root's CA is accepted by every service of that root.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        ssl_dir = owner_root / "config" / "ssl" / "wallet"
        context.load_cert_chain(ssl_dir / "private_wallet.crt", ssl_dir / "private_wallet.key")
        self.full_node = httpx.AsyncClient(
            base_url=_required_env("CHIA_FULL_NODE_RPC_URL"),
            verify=context,
            timeout=60,
            trust_env=False,
        )
        self.files = httpx.AsyncClient(base_url=self.mirror_url, timeout=10, trust_env=False)
        self._auto_farm_before: bool | None = None

    async def _full_node(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.full_node.post(f"/{method}", json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        assert data.get("success") is True, f"full node {method}: {data}"
        return data

    async def start(self) -> None:
        """Farm by hand during the test, so pending states last until the test farms."""
        self._auto_farm_before = bool(
            (await self._full_node("get_auto_farming", {}))["auto_farm_enabled"]
        )
        await self._full_node("set_auto_farming", {"auto_farm": False})

    async def farm(self) -> None:
        await self._full_node(
            "farm_block",
            {"address": self.farming_address, "blocks": 1, "guarantee_tx_block": True},
        )

    async def tick(self) -> None:
        await asyncio.sleep(self.poll_seconds)

    async def wait_published(self, store_id: str) -> None:
        history = await self.history(store_id)
        # A subscriber downloads one delta file per generation (none for the launch root).
        names = [
            f"{store_id}-{entry.root_hash}-delta-{generation}-v1.0.dat"
            for generation, entry in enumerate(history)
            if generation > 0
        ]

        async def served() -> bool:
            for name in names:
                if (await self.files.get(f"/{name}")).status_code != 200:
                    return False
            return True

        await self.eventually(served, what=f"the owner's mirror serves {len(names)} files")

    async def aclose(self) -> None:
        try:
            if self._auto_farm_before is not None:
                await self._full_node("set_auto_farming", {"auto_farm": self._auto_farm_before})
        finally:
            try:
                await super().aclose()
            finally:
                await self.full_node.aclose()
                await self.files.aclose()
