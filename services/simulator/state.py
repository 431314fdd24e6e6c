"""The simulated chain: keys with wallets and DataLayer nodes, stores, mirrors, mempool, blocks.

One `SimulatorState` is one chain shared by several keys. Each key is a separate "node": its
own wallet (coins, transactions, a DataLayer wallet once created) and its own DataLayer
(owned stores, subscriptions with a local copy that downloads over time).

The rules that real Chia 2.7.5 follows and the gateway must cope with:

- Writes go to the mempool and confirm at the next block (`farm_block`). A store has at most
  one pending root; pending data is invisible to reads.
- Every `manage_data_blocks` blocks each key runs a "manage data" cycle: queued unsubscribes
  are applied, then every subscription jumps to the newest generation it can download. A
  missed download (fault `mirrors_down`/`miss_downloads`) puts that URL on a back-off
  (`mirror_backoff_seconds`, 300 s like Chia, growing after three misses); `subscribe` keeps
  the back-off, `remove_subscriptions` + `subscribe` resets it.
- A key has no DataLayer wallet until its first create_data_store or subscribe.

All methods run on one event loop thread; nothing here awaits, so each call is atomic.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from services.simulator.errors import RpcError, WalletRpcError
from services.simulator.faults import Faults
from services.simulator.store import Change, PlannedRoot, StoreData

SeedName = Literal["demo", "none"]

#: The source a subscription downloads from when no URL is known (unless require_mirror_urls).
IMPLICIT_SOURCE = "simulator://owner"
#: Chia's back-off after a missed file: 300 s for three misses, then longer (server_misses_file).
BACKOFF_MULTIPLIERS = (1, 1, 1, 3, 3, 3, 6, 6, 12)
#: Fingerprints of the public test mnemonics Chia's docs use (abandon…art, zoo…vote).
KNOWN_FINGERPRINTS = (1532878573, 3483944781)
MOJO_PER_XCH = 10**12

MEMPOOL_SUCCESS = 1
MEMPOOL_PENDING = 2
MEMPOOL_FAILED = 3
TX_INCOMING = 0
TX_OUTGOING = 1
STANDARD_WALLET_ID = 1
DATALAYER_WALLET_ID = 2


@dataclass
class SimulatorConfig:
    """Knobs of a simulated chain (not fault switches, see faults.py)."""

    keys: int = 3
    block_seconds: float = 2.0
    manage_data_blocks: int = 2
    seed: SeedName = "demo"
    mirror_backoff_seconds: float = 300.0
    require_mirror_urls: bool = False
    coins_per_key: int = 20
    coin_amount: int = MOJO_PER_XCH
    shuffle_reads: bool = True

    def __post_init__(self) -> None:
        if self.keys < 1:
            raise ValueError("keys must be at least 1")
        if self.block_seconds <= 0:
            raise ValueError("block_seconds must be positive")
        if self.manage_data_blocks < 1:
            raise ValueError("manage_data_blocks must be at least 1")
        if self.seed not in ("demo", "none"):
            raise ValueError("seed must be 'demo' or 'none'")
        if self.seed == "demo" and self.keys < 2:
            raise ValueError("the demo seed needs at least 2 keys (key 1 owns the demo stores)")


# ---------------------------------------------------------------------------------- records
@dataclass
class Coin:
    """A coin of a key's standard wallet."""

    coin_id: str
    parent: str
    puzzle_hash: str
    amount: int
    confirmed_height: int = 0
    spent_height: int = 0
    coinbase: bool = False
    timestamp: int = 0
    reserved_by: str | None = None

    def coin_json(self) -> dict[str, Any]:
        """Chia's Coin JSON."""
        return {
            "amount": self.amount,
            "parent_coin_info": f"0x{self.parent}",
            "puzzle_hash": f"0x{self.puzzle_hash}",
        }


@dataclass
class TxRecord:
    """A wallet transaction record (TransactionRecord)."""

    name: str
    wallet_id: int
    tx_type: int
    amount: int
    fee: int
    to_puzzle_hash: str
    created_at_time: int
    op_id: str
    additions: list[dict[str, Any]] = field(default_factory=list)
    removals: list[dict[str, Any]] = field(default_factory=list)
    confirmed_height: int = 0
    status: int = MEMPOOL_SUCCESS
    error: str | None = None

    @property
    def confirmed(self) -> bool:
        """True once in a block."""
        return self.confirmed_height > 0


@dataclass
class Output:
    """A coin an operation creates for a key (change or payment)."""

    key: int
    coin_id: str
    parent: str
    puzzle_hash: str
    amount: int


@dataclass
class PendingOp:
    """One spend bundle in the mempool and what it does when it confirms."""

    op_id: str
    key: int
    kind: str
    created_at: int
    store_id: str | None = None
    mirror_id: str | None = None
    spent: list[str] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    tx_names: list[str] = field(default_factory=list)
    rejected: bool = False


@dataclass
class PendingRoot:
    """The one root of a store waiting for confirmation (creation when `planned` is None)."""

    op_id: str | None
    generation: int
    submitted_at: int
    planned: PlannedRoot | None = None


@dataclass
class Mirror:
    """A DataLayer mirror coin announcing download URLs for a store."""

    coin_id: str
    launcher_id: str
    urls: list[str]
    amount: int
    creator_key: int
    confirmed_at_height: int = 0
    deleting: bool = False


@dataclass
class Subscription:
    """A key's subscription to a store and its local copy."""

    store_id: str
    urls: list[str] = field(default_factory=list)
    local_generation: int | None = None
    unsubscribe_pending: bool = False
    retain: bool = False
    ignore_till: dict[str, float] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)


@dataclass
class KeyState:
    """One simulated key: its wallet and its DataLayer node."""

    index: int
    fingerprint: int
    puzzle_hashes: list[str]
    dl_wallet: bool = False
    coins: dict[str, Coin] = field(default_factory=dict)
    transactions: dict[str, TxRecord] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    #: Launcher ids the wallet tracks or tracked (subscribe); it keeps their mirrors after.
    tracked: list[str] = field(default_factory=list)


class Store:
    """A store on the simulated chain: owner, confirmed data and the pending root."""

    def __init__(self, store_id: str, owner: int, created_at: int) -> None:
        self.store_id = store_id
        self.owner = owner
        self.created_at = created_at
        self.data = StoreData()
        self.pending: PendingRoot | None = None
        #: A pending root dropped by clear_pending_roots while its spend was still in the mempool.
        self.cleared: PendingRoot | None = None
        #: The owner's local generation when it fell behind the chain (a cleared root confirmed).
        self.owner_local: int | None = None

    @property
    def launched(self) -> bool:
        """True once the creation is confirmed."""
        return self.data.latest >= 0


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------ state
class SimulatorState:
    """One simulated chain with `config.keys` keys; see the module docstring."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        salt: str | None = None,
        fund: bool = True,
    ) -> None:
        self.config = config or SimulatorConfig(seed="none")
        self.faults = faults or Faults()
        self.clock = clock
        self.salt = salt if salt is not None else os.urandom(8).hex()
        self.rng = random.Random()
        self.nonce = 0
        self.height = 1
        self.last_timestamp = self.now()
        self.genesis_challenge = _sha(f"cadt-sim-genesis:{self.salt}")
        self.keys: list[KeyState] = []
        self.stores: dict[str, Store] = {}
        self.mirrors: dict[str, Mirror] = {}
        self.mempool: dict[str, PendingOp] = {}
        self.puzzle_owner: dict[str, int] = {}
        self.dirty = True
        self.auto_farm = True
        for index in range(self.config.keys):
            self._add_key(index, fund=fund)

    @classmethod
    def create(
        cls,
        config: SimulatorConfig | None = None,
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SimulatorState:
        """A fresh chain with funded keys, seeded as `config.seed` says."""
        state = cls(config or SimulatorConfig(), faults=faults, clock=clock)
        if state.config.seed == "demo":
            from services.simulator.seed import apply_demo_seed

            apply_demo_seed(state)
        return state

    # ------------------------------------------------------------------ basics
    def now(self) -> int:
        """Unix seconds of the simulated wall clock."""
        return int(self.clock())

    def new_id(self, kind: str) -> str:
        """A fresh 32-byte id, unique per data dir (salted) and deterministic per history."""
        self.nonce += 1
        return _sha(f"{self.salt}:{kind}:{self.nonce}")

    def key(self, index: int) -> KeyState:
        """The key with this index; IndexError for an unknown one."""
        if not 0 <= index < len(self.keys):
            raise IndexError(index)
        return self.keys[index]

    def _add_key(self, index: int, *, fund: bool) -> KeyState:
        fingerprint = (
            KNOWN_FINGERPRINTS[index]
            if index < len(KNOWN_FINGERPRINTS)
            else int(_sha(f"fingerprint:{index}")[:8], 16)
        )
        puzzle_hash = _sha(f"cadt-sim-puzzle:{fingerprint}:0")
        key = KeyState(index=index, fingerprint=fingerprint, puzzle_hashes=[puzzle_hash])
        self.keys.append(key)
        self.puzzle_owner[puzzle_hash] = index
        if fund:
            for number in range(self.config.coins_per_key):
                parent = _sha(f"cadt-sim-reward:{fingerprint}:{number}")
                self._give_coin(
                    key,
                    parent=parent,
                    amount=self.config.coin_amount,
                    height=1,
                    timestamp=self.last_timestamp,
                    coinbase=True,
                )
        return key

    def _give_coin(
        self,
        key: KeyState,
        *,
        parent: str,
        amount: int,
        height: int,
        timestamp: int,
        coinbase: bool = False,
    ) -> Coin:
        puzzle_hash = key.puzzle_hashes[0]
        coin_id = coin_name(parent, puzzle_hash, amount)
        coin = Coin(coin_id, parent, puzzle_hash, amount, height, 0, coinbase, timestamp)
        key.coins[coin_id] = coin
        return coin

    def next_puzzle_hash(self, key: KeyState, *, new: bool) -> str:
        """The key's receive puzzle hash; a fresh one when `new`."""
        if new:
            puzzle_hash = _sha(f"cadt-sim-puzzle:{key.fingerprint}:{len(key.puzzle_hashes)}")
            key.puzzle_hashes.append(puzzle_hash)
            self.puzzle_owner[puzzle_hash] = key.index
            self.dirty = True
        return key.puzzle_hashes[-1]

    # ------------------------------------------------------------------ wallet views
    def visible_coins(self, key: KeyState) -> list[Coin]:
        """Confirmed unspent coins, capped by the `spendable_coins` fault."""
        coins = sorted(
            (c for c in key.coins.values() if c.confirmed_height > 0 and c.spent_height == 0),
            key=lambda c: (c.confirmed_height, c.coin_id),
        )
        cap = self.faults.spendable_coins.get(key.index)
        return coins if cap is None else coins[: max(0, cap)]

    def spendable_coins(self, key: KeyState) -> list[Coin]:
        """Visible coins not reserved by a pending transaction."""
        return [coin for coin in self.visible_coins(key) if coin.reserved_by is None]

    def hidden_coin_ids(self, key: KeyState) -> set[str]:
        """Unspent coins the spendable_coins fault hides."""
        visible = {coin.coin_id for coin in self.visible_coins(key)}
        return {
            coin.coin_id
            for coin in key.coins.values()
            if coin.confirmed_height > 0 and coin.spent_height == 0 and coin.coin_id not in visible
        }

    def pending_change(self, key: KeyState) -> list[Coin]:
        """Coins this key will receive from its own pending transactions."""
        return [coin for coin in key.coins.values() if coin.confirmed_height == 0]

    def balance(self, key: KeyState) -> dict[str, int]:
        """The numbers of get_wallet_balance for the standard wallet."""
        visible = self.visible_coins(key)
        confirmed = sum(coin.amount for coin in visible)
        spendable = sum(coin.amount for coin in visible if coin.reserved_by is None)
        reserved = [coin for coin in visible if coin.reserved_by is not None]
        change = sum(coin.amount for coin in self.pending_change(key))
        unconfirmed = confirmed - sum(coin.amount for coin in reserved) + change
        return {
            "confirmed_wallet_balance": confirmed,
            "unconfirmed_wallet_balance": unconfirmed,
            "spendable_balance": spendable,
            "max_send_amount": spendable,
            "pending_change": change,
            "pending_coin_removal_count": len(reserved),
            "unspent_coin_count": len(visible),
        }

    def check_synced(self, key: KeyState) -> None:
        """Refuse transactions while the wallet_unsynced fault is on for this key."""
        if key.index in self.faults.wallet_unsynced:
            raise WalletRpcError("Wallet needs to be fully synced before making transactions.")

    def require_dl_wallet(self, key: KeyState) -> None:
        """DataLayer calls that go through the wallet fail until the DL wallet exists."""
        if not key.dl_wallet:
            raise WalletRpcError("DataLayerWallet not available")

    def _select_coins(self, key: KeyState, amount: int) -> list[Coin]:
        spendable = sorted(self.spendable_coins(key), key=lambda c: (-c.amount, c.coin_id))
        total = sum(coin.amount for coin in spendable)
        if amount > total:
            raise WalletRpcError(
                "Can't select amount higher than our spendable balance.  "
                f"Amount: {amount}, spendable: {total}"
            )
        picked: list[Coin] = []
        gathered = 0
        for coin in spendable:
            picked.append(coin)
            gathered += coin.amount
            if gathered >= amount:
                break
        return picked

    # ------------------------------------------------------------------ submitting
    def submit(
        self,
        key: KeyState,
        kind: str,
        *,
        fee: int,
        outgoing: int = 0,
        payments: Iterable[tuple[int | None, str, int]] = (),
        to_puzzle_hash: str | None = None,
        dl_record: bool = False,
        store_id: str | None = None,
        mirror_id: str | None = None,
        spend: Iterable[Coin] | None = None,
    ) -> tuple[PendingOp, list[TxRecord]]:
        """Put a spend in the mempool: select coins, reserve them, record the transactions.

        `outgoing` mojos leave the wallet without a coin any key tracks (launcher, mirror);
        `payments` are (recipient key or None, puzzle hash, amount) outputs.
        """
        self.check_synced(key)
        if fee < 0 or outgoing < 0:
            raise WalletRpcError("uint64 must not be negative")
        payment_list = list(payments)
        total = outgoing + fee + sum(amount for _key, _ph, amount in payment_list)
        coins = (
            list(spend)
            if spend is not None
            else (self._select_coins(key, total) if total > 0 else [])
        )
        gathered = sum(coin.amount for coin in coins)
        if gathered < total:
            raise WalletRpcError(
                f"Coin amount {gathered} is less than the total amount of the split"
            )
        op_id = self.new_id(f"op:{kind}")
        now = self.now()
        op = PendingOp(op_id=op_id, key=key.index, kind=kind, created_at=now)
        op.store_id, op.mirror_id = store_id, mirror_id
        parent = coins[0].coin_id if coins else op_id
        for recipient, puzzle_hash, amount in payment_list:
            coin_id = coin_name(parent, puzzle_hash, amount)
            op.outputs.append(
                Output(-1 if recipient is None else recipient, coin_id, parent, puzzle_hash, amount)
            )
        change = gathered - total
        if change > 0:
            own_hash = key.puzzle_hashes[0]
            coin_id = coin_name(parent, own_hash, change)
            op.outputs.append(Output(key.index, coin_id, parent, own_hash, change))
            key.coins[coin_id] = Coin(coin_id, parent, own_hash, change, timestamp=now)
        for coin in coins:
            coin.reserved_by = op_id
            op.spent.append(coin.coin_id)
        in_mempool = {
            coin_id
            for other in self.mempool.values()
            if not other.rejected
            for coin_id in other.spent
        }
        double_spend = any(coin.coin_id in in_mempool for coin in coins)
        rejected = key.index in self.faults.reject_transactions or double_spend
        op.rejected = rejected
        records: list[TxRecord] = []
        additions = [
            {
                "amount": o.amount,
                "parent_coin_info": f"0x{o.parent}",
                "puzzle_hash": f"0x{o.puzzle_hash}",
            }
            for o in op.outputs
        ]
        removals = [coin.coin_json() for coin in coins]
        destination = to_puzzle_hash or (
            payment_list[0][1] if payment_list else key.puzzle_hashes[0]
        )
        if coins or not dl_record:
            records.append(
                TxRecord(
                    name=self.new_id("tx"),
                    wallet_id=STANDARD_WALLET_ID,
                    tx_type=TX_OUTGOING,
                    amount=outgoing + sum(amount for _k, _p, amount in payment_list),
                    fee=fee,
                    to_puzzle_hash=destination,
                    created_at_time=now,
                    op_id=op_id,
                    additions=additions,
                    removals=removals,
                )
            )
        if dl_record:
            records.append(
                TxRecord(
                    name=self.new_id("tx"),
                    wallet_id=DATALAYER_WALLET_ID,
                    tx_type=TX_OUTGOING,
                    amount=1,
                    fee=0 if coins else fee,
                    to_puzzle_hash=destination,
                    created_at_time=now,
                    op_id=op_id,
                )
            )
        for record in records:
            if rejected:
                record.status, record.error = MEMPOOL_FAILED, "DOUBLE_SPEND"
            key.transactions[record.name] = record
            op.tx_names.append(record.name)
        self.mempool[op_id] = op
        self.dirty = True
        return op, records

    # ------------------------------------------------------------------ DataLayer writes
    def create_store(self, key: KeyState, fee: int) -> tuple[str, list[TxRecord]]:
        """create_data_store: a launcher spend that confirms at the next block."""
        self.check_synced(key)
        key.dl_wallet = True
        store_id = self.new_id("store")
        # Chia records the launcher spend in the standard wallet only (one transaction).
        op, records = self.submit(key, "create_store", fee=fee, outgoing=1, store_id=store_id)
        store = Store(store_id, key.index, self.now())
        store.pending = PendingRoot(op_id=op.op_id, generation=0, submitted_at=op.created_at)
        self.stores[store_id] = store
        return store_id, records

    def batch_update(self, key: KeyState, store_id: str, changelist: list[Any], fee: int) -> str:
        """batch_update: plan the root, then a singleton spend that confirms at the next block."""
        self.require_dl_wallet(key)
        store = self.stores.get(store_id)
        if store is None or store.owner != key.index:
            raise RpcError(f"Singleton with launcher ID {store_id} is not owned by DL Wallet")
        if store.pending is not None:
            raise RpcError("Already have a pending root waiting for confirmation.")
        planned = store.data.plan(changelist)
        if self._singleton_pending(key, store_id):
            # The DataLayer's own pending root is gone (clear_pending_roots) but the wallet
            # still waits for the previous spend of the singleton.
            raise WalletRpcError(f"Singleton with launcher ID {store_id} is currently pending")
        op, records = self.submit(key, "update_root", fee=fee, dl_record=True, store_id=store_id)
        store.pending = PendingRoot(
            op_id=op.op_id,
            generation=store.data.latest + 1,
            submitted_at=op.created_at,
            planned=planned,
        )
        return records[-1].name

    def _singleton_pending(self, key: KeyState, store_id: str) -> bool:
        """The wallet waits for a spend of the store's singleton that is still in the mempool.

        Real Chia keys this on the DataLayer wallet's unconfirmed singleton record, which it
        keeps even when its transaction records are deleted. A rejected spend is left out here
        (the gateway's orphaned-root recovery relies on that); whether Chia 2.7.5 lets go of
        its record in that case was not observed.
        """
        return any(
            op.kind == "update_root"
            and op.store_id == store_id
            and op.key == key.index
            and not op.rejected
            for op in self.mempool.values()
        )

    def subscribe(self, key: KeyState, store_id: str, urls: list[str]) -> None:
        """subscribe: track a store on chain; the download happens at the next cycles."""
        key.dl_wallet = True
        self.dirty = True
        store = self.stores.get(store_id)
        if store is None or not store.launched:
            raise WalletRpcError(f"Launcher ID {store_id} is not a valid coin")
        if store_id not in key.tracked:
            key.tracked.append(store_id)
        subscription = key.subscriptions.get(store_id)
        if subscription is None:
            subscription = Subscription(store_id=store_id)
            key.subscriptions[store_id] = subscription
        for url in urls:
            url = url.rstrip("/")
            # Chia keeps an existing server row, so its back-off survives a plain re-subscribe.
            if url not in subscription.urls:
                subscription.urls.append(url)

    def unsubscribe(self, key: KeyState, store_id: str, retain: bool) -> None:
        """unsubscribe: queued; applied at this key's next manage-data cycle."""
        subscription = key.subscriptions.get(store_id)
        if subscription is None:
            raise RpcError("No subscription found for the given store_id.")
        subscription.unsubscribe_pending = True
        subscription.retain = retain
        self.dirty = True

    def remove_subscriptions(self, key: KeyState, store_id: str, urls: list[str]) -> None:
        """remove_subscriptions: drop these URLs (and their back-off) from a subscription."""
        subscription = key.subscriptions.get(store_id)
        if subscription is None:
            return
        for url in (url.rstrip("/") for url in urls):
            if url in subscription.urls:
                subscription.urls.remove(url)
            subscription.ignore_till.pop(url, None)
            subscription.misses.pop(url, None)
        self.dirty = True

    def add_mirror(
        self, key: KeyState, store_id: str, urls: list[str], amount: int, fee: int
    ) -> str:
        """add_mirror: a mirror coin for any launcher id (Chia checks none); confirms next block."""
        if not urls:
            raise RpcError("URL list can't be empty")
        self.require_dl_wallet(key)
        if amount < 1:
            raise WalletRpcError("Mirror amount must be at least 1 mojo")
        mirror_id = self.new_id("mirror")
        op, _records = self.submit(
            key, "add_mirror", fee=fee, outgoing=amount, mirror_id=mirror_id, store_id=store_id
        )
        self.mirrors[mirror_id] = Mirror(
            coin_id=mirror_id,
            launcher_id=store_id,
            urls=[url.rstrip("/") for url in urls],
            amount=amount,
            creator_key=key.index,
        )
        return op.op_id

    def delete_mirror(self, key: KeyState, coin_id: str, fee: int) -> None:
        """delete_mirror: spend our mirror coin back into the wallet at the next block.

        Like Chia: a mirror this wallet does not list fails its internal assertion (an empty
        nested error), another key's mirror is refused, and deleting one whose deletion is
        pending makes a second spend of the same coin that the mempool holds back
        (MEMPOOL_CONFLICT); it counts as confirmed once the first one is. The mirror coin pays
        the fee; the DataLayer wallet records the spend.
        """
        self.require_dl_wallet(key)
        mirror = self.mirrors.get(coin_id)
        if mirror is None or mirror not in self.mirrors_for(key, mirror.launcher_id):
            raise WalletRpcError("", code="INTERNAL_ERROR")
        if mirror.creator_key != key.index:
            raise WalletRpcError(
                f"DL Wallet does not have permission to delete mirror with ID {coin_id}"
            )
        if mirror.deleting:
            self._conflicting_mirror_deletion(key, mirror, fee)
            return
        op, records = self.submit(
            key, "delete_mirror", fee=0, mirror_id=coin_id, spend=[], dl_record=True
        )
        records[-1].amount, records[-1].fee = mirror.amount, fee
        refund_amount = mirror.amount - fee
        if refund_amount > 0:
            own_hash = key.puzzle_hashes[0]
            refund = Output(
                key.index,
                coin_name(coin_id, own_hash, refund_amount),
                coin_id,
                own_hash,
                refund_amount,
            )
            op.outputs.append(refund)
            key.coins[refund.coin_id] = Coin(
                refund.coin_id,
                refund.parent,
                refund.puzzle_hash,
                refund.amount,
                timestamp=op.created_at,
            )
        mirror.deleting = True
        self.dirty = True

    def _conflicting_mirror_deletion(self, key: KeyState, mirror: Mirror, fee: int) -> None:
        first = next(
            (
                op
                for op in self.mempool.values()
                if op.kind == "delete_mirror" and op.mirror_id == mirror.coin_id
            ),
            None,
        )
        record = TxRecord(
            name=self.new_id("tx"),
            wallet_id=DATALAYER_WALLET_ID,
            tx_type=TX_OUTGOING,
            amount=mirror.amount,
            fee=fee,
            to_puzzle_hash=key.puzzle_hashes[0],
            created_at_time=self.now(),
            op_id=first.op_id if first is not None else "",
            status=MEMPOOL_PENDING,
            error="MEMPOOL_CONFLICT",
        )
        key.transactions[record.name] = record
        if first is not None:
            first.tx_names.append(record.name)
        self.dirty = True

    def clear_pending_roots(self, key: KeyState, store_id: str) -> PendingRoot | None:
        """clear_pending_roots: forget a pending (update) root.

        Its spend stays where it is: if it is still in the mempool it confirms anyway, and
        then the chain is one root ahead of the owner's local copy (as on Chia).
        """
        store = self.stores.get(store_id)
        if store is None or store.owner != key.index or store.pending is None:
            return None
        if store.pending.planned is None:
            return None
        cleared = store.pending
        store.pending = None
        store.cleared = cleared
        self.dirty = True
        return cleared

    # ------------------------------------------------------------------ wallet writes
    def delete_unconfirmed_transactions(self, key: KeyState, wallet_id: int) -> None:
        """Drop a wallet's unconfirmed records: the wallet forgets them, coins come back.

        Like Chia, only the wallet forgets: a spend the mempool accepted still confirms at the
        next block (and spending its coins again is a double spend); a rejected one is gone.
        Records of the same spend in the other wallet stay (unconfirmed) until deleted there,
        as on a real node; a pending root stays too until clear_pending_roots.
        """
        doomed = [
            name
            for name, record in key.transactions.items()
            if record.wallet_id == wallet_id and not record.confirmed
        ]
        touched: set[str] = set()
        for name in doomed:
            touched.add(key.transactions.pop(name).op_id)
        for op_id in touched:
            op = self.mempool.get(op_id)
            if op is None:
                continue
            if not op.rejected:
                self._forget_pending_coins(key, op)
                continue
            del self.mempool[op_id]
            for coin_id in op.spent:
                coin = key.coins.get(coin_id)
                if coin is not None and coin.reserved_by == op_id:
                    coin.reserved_by = None
            for output in op.outputs:
                if output.key == key.index:
                    key.coins.pop(output.coin_id, None)
            if op.kind == "add_mirror" and op.mirror_id:
                self.mirrors.pop(op.mirror_id, None)
            if op.kind == "delete_mirror" and op.mirror_id in self.mirrors:
                self.mirrors[op.mirror_id].deleting = False
        self.dirty = True

    def _forget_pending_coins(self, key: KeyState, op: PendingOp) -> None:
        for coin_id in op.spent:
            coin = key.coins.get(coin_id)
            if coin is not None and coin.reserved_by == op.op_id:
                coin.reserved_by = None
        for output in op.outputs:
            coin = key.coins.get(output.coin_id)
            if output.key == key.index and coin is not None and coin.confirmed_height == 0:
                del key.coins[output.coin_id]

    # ------------------------------------------------------------------ DataLayer views
    def tracks(self, key: KeyState, store: Store) -> bool:
        """True when this key's DataLayer knows the store (owner or subscriber)."""
        return store.owner == key.index or store.store_id in key.subscriptions

    def local_generation(self, key: KeyState, store: Store) -> int | None:
        """The generation this key's DataLayer holds locally, None when it holds nothing."""
        if not store.launched:
            return None
        if store.owner == key.index:
            if store.store_id in self.faults.lost_data:
                return 0
            return store.data.latest if store.owner_local is None else store.owner_local
        subscription = key.subscriptions.get(store.store_id)
        if subscription is None or subscription.local_generation is None:
            return None
        return min(subscription.local_generation, store.data.latest)

    def mirrors_for(self, key: KeyState, store_id: str) -> list[Mirror]:
        """Mirrors of a store as this key's wallet sees them.

        Chia's wallet lists confirmed mirror coins only (a new one shows once it is in a block)
        and only for launchers it tracks: its own stores and those it subscribed to (it keeps
        them after an unsubscribe). A mirror of an unknown launcher is on chain, but unlisted.
        """
        store = self.stores.get(store_id)
        owned = store is not None and store.owner == key.index
        if not (owned or store_id in key.subscriptions or store_id in key.tracked):
            return []
        return [
            mirror
            for mirror in self.mirrors.values()
            if mirror.launcher_id == store_id and mirror.confirmed_at_height > 0
        ]

    # ------------------------------------------------------------------ blocks
    def farm_block(self) -> int:
        """Make one block: confirm the mempool, then run manage-data cycles when due."""
        self.height += 1
        height = self.height
        timestamp = max(self.now(), self.last_timestamp)
        self.last_timestamp = timestamp
        for op_id in list(self.mempool):
            op = self.mempool[op_id]
            if op.rejected:
                continue
            del self.mempool[op_id]
            self._confirm(op, height, timestamp)
        if height % self.config.manage_data_blocks == 0:
            for key in self.keys:
                self.run_manage_cycle(key)
        self.dirty = True
        return height

    def farm_blocks(self, count: int) -> int:
        """Farm `count` blocks; the new height."""
        for _ in range(count):
            self.farm_block()
        return self.height

    def _confirm(self, op: PendingOp, height: int, timestamp: int) -> None:
        key = self.keys[op.key]
        for coin_id in op.spent:
            coin = key.coins.get(coin_id)
            if coin is not None:
                coin.spent_height = height
        for output in op.outputs:
            if output.key < 0:
                continue
            owner = self.keys[output.key]
            coin = owner.coins.get(output.coin_id)
            if coin is None:
                coin = Coin(output.coin_id, output.parent, output.puzzle_hash, output.amount)
                owner.coins[output.coin_id] = coin
                if owner.index != op.key:
                    incoming = TxRecord(
                        name=self.new_id("tx"),
                        wallet_id=STANDARD_WALLET_ID,
                        tx_type=TX_INCOMING,
                        amount=output.amount,
                        fee=0,
                        to_puzzle_hash=output.puzzle_hash,
                        created_at_time=timestamp,
                        op_id=op.op_id,
                        additions=[coin.coin_json()],
                        confirmed_height=height,
                    )
                    owner.transactions[incoming.name] = incoming
            coin.confirmed_height, coin.timestamp = height, timestamp
        for name in op.tx_names:
            record = key.transactions.get(name)
            if record is not None:
                record.confirmed_height = height
        store = self.stores.get(op.store_id) if op.store_id else None
        if op.kind == "create_store" and store is not None:
            store.data.launch(timestamp=timestamp, height=height)
            if store.pending is not None and store.pending.op_id == op.op_id:
                store.pending = None
        elif op.kind == "update_root" and store is not None:
            pending = store.pending
            cleared = store.cleared
            if pending is not None and pending.op_id == op.op_id and pending.planned is not None:
                store.data.commit(pending.planned, timestamp=timestamp, height=height)
                store.pending = None
            elif cleared is not None and cleared.op_id == op.op_id and cleared.planned is not None:
                # The root was cleared locally, but its spend was still in the mempool: the
                # chain moves on and the owner's local copy stays where it was.
                if store.owner_local is None:
                    store.owner_local = store.data.latest
                store.data.commit(cleared.planned, timestamp=timestamp, height=height)
                store.cleared = None
        elif op.kind == "add_mirror" and op.mirror_id in self.mirrors:
            self.mirrors[op.mirror_id].confirmed_at_height = height
        elif op.kind == "delete_mirror" and op.mirror_id:
            self.mirrors.pop(op.mirror_id, None)

    def run_manage_cycle(self, key: KeyState) -> None:
        """One DataLayer cycle of a key: apply queued unsubscribes, then download."""
        for store_id in [s for s, sub in key.subscriptions.items() if sub.unsubscribe_pending]:
            del key.subscriptions[store_id]
        now = self.clock()
        for subscription in key.subscriptions.values():
            store = self.stores.get(subscription.store_id)
            if store is None or not store.launched or store.owner == key.index:
                continue
            self._download(key, store, subscription, now)
        self.dirty = True

    def download_sources(self, subscription: Subscription) -> list[str]:
        """Where a subscription downloads from: its URLs, then the store's on-chain mirrors."""
        sources = list(subscription.urls)
        for mirror in self.mirrors.values():
            if mirror.launcher_id == subscription.store_id and mirror.confirmed_at_height > 0:
                sources.extend(url for url in mirror.urls if url not in sources)
        if not sources and not self.config.require_mirror_urls:
            sources.append(IMPLICIT_SOURCE)
        return sources

    def _download(
        self, key: KeyState, store: Store, subscription: Subscription, now: float
    ) -> None:
        target = store.data.latest
        if target < 1:
            return  # Chia fetches nothing while only the launch root is on chain
        if subscription.local_generation is None:
            # Chia's first attempt makes an empty local store (generation 0, zero root) before
            # it downloads, so a failed first download leaves the node at 0 of N, not unknown.
            subscription.local_generation = 0
        cap = self.faults.stuck_generation(store.store_id, key.index)
        reachable = target if cap is None else min(target, cap)
        local = subscription.local_generation
        if local is not None and local >= reachable:
            return
        for url in self.download_sources(subscription):
            if subscription.ignore_till.get(url, 0.0) > now:
                continue
            if url in self.faults.mirrors_down or self.faults.take_miss(store.store_id, key.index):
                misses = subscription.misses.get(url, 0) + 1
                subscription.misses[url] = misses
                step = BACKOFF_MULTIPLIERS[min(misses, len(BACKOFF_MULTIPLIERS)) - 1]
                subscription.ignore_till[url] = now + step * self.config.mirror_backoff_seconds
                continue
            subscription.local_generation = reachable
            subscription.misses.pop(url, None)
            subscription.ignore_till.pop(url, None)
            return

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """A readable overview for the admin route and tests."""
        now = self.clock()
        keys = []
        for key in self.keys:
            subscriptions = []
            for sub in key.subscriptions.values():
                store = self.stores.get(sub.store_id)
                subscriptions.append(
                    {
                        "store_id": sub.store_id,
                        "urls": sub.urls,
                        "local_generation": sub.local_generation,
                        "target_generation": store.data.latest if store else None,
                        "unsubscribe_pending": sub.unsubscribe_pending,
                        "backoff_seconds_left": {
                            url: round(till - now, 3)
                            for url, till in sub.ignore_till.items()
                            if till > now
                        },
                    }
                )
            keys.append(
                {
                    "index": key.index,
                    "fingerprint": key.fingerprint,
                    "dl_wallet": key.dl_wallet,
                    "balance": self.balance(key),
                    "owned_stores": sorted(
                        s.store_id for s in self.stores.values() if s.owner == key.index
                    ),
                    "subscriptions": subscriptions,
                    "unconfirmed_transactions": sum(
                        1 for tx in key.transactions.values() if not tx.confirmed
                    ),
                }
            )
        return {
            "height": self.height,
            "timestamp": self.last_timestamp,
            "block_seconds": self.config.block_seconds,
            "manage_data_blocks": self.config.manage_data_blocks,
            "mempool": len(self.mempool),
            "stores": len(self.stores),
            "mirrors": len(self.mirrors),
            "keys": keys,
        }

    # ------------------------------------------------------------------ persistence helpers
    def export_meta(self) -> dict[str, Any]:
        """Everything except confirmed store generations, as JSON-able data."""
        stores = {
            store_id: {
                "owner": store.owner,
                "created_at": store.created_at,
                "pending": _pending_json(store.pending),
                "cleared": _pending_json(store.cleared),
                "owner_local": store.owner_local,
            }
            for store_id, store in self.stores.items()
        }
        return {
            "version": 1,
            "salt": self.salt,
            "nonce": self.nonce,
            "height": self.height,
            "last_timestamp": self.last_timestamp,
            "genesis_challenge": self.genesis_challenge,
            "keys": [asdict(key) for key in self.keys],
            "stores": stores,
            "mirrors": [asdict(mirror) for mirror in self.mirrors.values()],
            "mempool": [asdict(op) for op in self.mempool.values()],
        }

    @classmethod
    def restore(
        cls,
        config: SimulatorConfig,
        meta: dict[str, Any],
        generations: Iterable[tuple[str, str, int, int, list[Change]]],
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SimulatorState:
        """Rebuild a state from `export_meta` output and the stored generations."""
        state = cls(config, faults=faults, clock=clock, salt=meta["salt"], fund=False)
        state.keys = []
        state.puzzle_owner = {}
        state.nonce = meta["nonce"]
        state.height = meta["height"]
        state.last_timestamp = meta["last_timestamp"]
        state.genesis_challenge = meta["genesis_challenge"]
        for raw in meta["keys"]:
            key = KeyState(
                index=raw["index"],
                fingerprint=raw["fingerprint"],
                puzzle_hashes=list(raw["puzzle_hashes"]),
                dl_wallet=raw["dl_wallet"],
                coins={cid: Coin(**coin) for cid, coin in raw["coins"].items()},
                transactions={name: TxRecord(**tx) for name, tx in raw["transactions"].items()},
                subscriptions={
                    sid: Subscription(**sub) for sid, sub in raw["subscriptions"].items()
                },
                tracked=list(raw.get("tracked", [])),
            )
            for subscription in key.subscriptions.values():
                # Chia queues unsubscribes in memory: a restart before the next cycle forgets them.
                subscription.unsubscribe_pending = False
            state.keys.append(key)
            for puzzle_hash in key.puzzle_hashes:
                state.puzzle_owner[puzzle_hash] = key.index
        for index in range(len(state.keys), config.keys):
            state._add_key(index, fund=True)
        for store_id, raw in meta["stores"].items():
            store = Store(store_id, raw["owner"], raw["created_at"])
            state.stores[store_id] = store
        for store_id, root, timestamp, height, changes in generations:
            data = state.stores[store_id].data
            if not data.generations:
                data.launch(timestamp=timestamp, height=height)
                continue
            planned = data.plan_changes(changes)
            if planned.root != root:
                raise ValueError(f"corrupt simulator state: root mismatch in store {store_id}")
            data.commit(planned, timestamp=timestamp, height=height)
        for store_id, raw in meta["stores"].items():
            store = state.stores[store_id]
            store.pending = _pending_from_json(raw["pending"])
            store.cleared = _pending_from_json(raw.get("cleared"))
            store.owner_local = raw.get("owner_local")
        state.mirrors = {raw["coin_id"]: Mirror(**raw) for raw in meta["mirrors"]}
        for raw in meta["mempool"]:
            outputs = [Output(**output) for output in raw.pop("outputs")]
            op = PendingOp(**raw, outputs=outputs)
            state.mempool[op.op_id] = op
        state.dirty = False
        return state


def _pending_json(pending: PendingRoot | None) -> dict[str, Any] | None:
    if pending is None:
        return None
    planned = pending.planned
    return {
        "op_id": pending.op_id,
        "generation": pending.generation,
        "submitted_at": pending.submitted_at,
        "planned": None
        if planned is None
        else {
            "changes": [list(change) for change in planned.changes],
            "root": planned.root,
            "accumulator": str(planned.accumulator),
            "size": planned.size,
        },
    }


def _pending_from_json(raw: dict[str, Any] | None) -> PendingRoot | None:
    if raw is None:
        return None
    planned_raw = raw["planned"]
    planned: PlannedRoot | None = None
    if planned_raw is not None:
        planned = PlannedRoot(
            changes=tuple((c[0], c[1], c[2]) for c in planned_raw["changes"]),
            root=planned_raw["root"],
            accumulator=int(planned_raw["accumulator"]),
            size=planned_raw["size"],
        )
    return PendingRoot(
        op_id=raw["op_id"],
        generation=raw["generation"],
        submitted_at=raw["submitted_at"],
        planned=planned,
    )


def coin_name(parent: str, puzzle_hash: str, amount: int) -> str:
    """Chia's coin id: sha256(parent || puzzle_hash || amount)."""
    amount_bytes = amount.to_bytes((amount.bit_length() + 8) // 8, "big") if amount else b""
    return hashlib.sha256(
        bytes.fromhex(parent) + bytes.fromhex(puzzle_hash) + amount_bytes
    ).hexdigest()
