"""Wallet RPC methods of one simulated key, shaped like chia-blockchain 2.7.5's wallet service.

Wallet 1 is the standard wallet (type 0); wallet 2 is the DataLayer wallet (type 11) once the
key has one. Coins are confirmed at blocks; a pending spend reserves its coins (they stay
"unspent" in get_coin_records but leave the spendable set), and its change is an unconfirmed
addition until the next block, exactly the situation CADT's coin checks must handle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.simulator.bech32m import decode_puzzle_hash, encode_puzzle_hash
from services.simulator.errors import RpcError
from services.simulator.hexfmt import parse_bytes32, prefixed
from services.simulator.state import (
    DATALAYER_WALLET_ID,
    STANDARD_WALLET_ID,
    Coin,
    KeyState,
    SimulatorState,
    TxRecord,
)

Handler = Callable[[SimulatorState, KeyState, dict[str, Any]], dict[str, Any]]

CHIA_VERSION = "2.7.5"
NETWORK_NAME = "simulator0"
NETWORK_PREFIX = "txch"
_FULL_NODE_PEER = "c0ffee" * 10 + "c0fe"
_VALID_TIMES = {
    "max_blocks_after_created": None,
    "max_height": None,
    "max_secs_after_created": None,
    "max_time": None,
    "min_blocks_since_created": None,
    "min_height": None,
    "min_secs_since_created": None,
    "min_time": None,
}


def _field(request: dict[str, Any], name: str) -> Any:
    if name not in request:
        raise RpcError(name)
    return request[name]


def _int_field(request: dict[str, Any], name: str, default: int | None = None) -> int:
    if name not in request or request[name] is None:
        if default is None:
            raise RpcError(name)
        return default
    value = request[name]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RpcError(f"invalid {name} {value!r}")
    return int(value)


def _wallet_id(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> int:
    wallet_id = _int_field(request, "wallet_id")
    if wallet_id == STANDARD_WALLET_ID or (wallet_id == DATALAYER_WALLET_ID and key.dl_wallet):
        return wallet_id
    raise RpcError(str(wallet_id))


def transaction_json(record: TxRecord, *, sent: bool = True) -> dict[str, Any]:
    """Chia's TransactionRecord JSON (`sent=False`: as returned before it went to a peer)."""
    return {
        "additions": record.additions,
        "amount": record.amount,
        "confirmed": record.confirmed,
        "confirmed_at_height": record.confirmed_height,
        "created_at_time": record.created_at_time,
        "fee_amount": record.fee,
        "memos": {},
        "name": prefixed(record.name),
        "removals": record.removals,
        "sent": 1 if sent else 0,
        "sent_to": [[_FULL_NODE_PEER, record.status, record.error]] if sent else [],
        "spend_bundle": None,
        "to_address": encode_puzzle_hash(record.to_puzzle_hash, NETWORK_PREFIX),
        "to_puzzle_hash": prefixed(record.to_puzzle_hash),
        "trade_id": None,
        "type": record.tx_type,
        "valid_times": dict(_VALID_TIMES),
        "wallet_id": record.wallet_id,
    }


def _coin_record_json(coin: Coin) -> dict[str, Any]:
    return {
        "amount": coin.amount,
        "coinbase": coin.coinbase,
        "confirmed_height": coin.confirmed_height,
        "id": prefixed(coin.coin_id),
        "metadata": None,
        "parent_coin_info": prefixed(coin.parent),
        "puzzle_hash": prefixed(coin.puzzle_hash),
        "spent_height": coin.spent_height,
        "type": 0,
        "wallet_identifier": {"id": STANDARD_WALLET_ID, "type": 0},
    }


def _spendable_json(coin: Coin) -> dict[str, Any]:
    return {
        "coin": coin.coin_json(),
        "coinbase": coin.coinbase,
        "confirmed_block_index": coin.confirmed_height,
        "spent_block_index": coin.spent_height,
        "timestamp": coin.timestamp,
    }


# ---------------------------------------------------------------------------------- methods
def get_routes(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """The routes this service answers."""
    return {"routes": [f"/{name}" for name in HANDLERS]}


def get_sync_status(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Synced unless the wallet_unsynced fault is on for this key."""
    unsynced = key.index in state.faults.wallet_unsynced
    return {"genesis_initialized": True, "synced": not unsynced, "syncing": unsynced}


def get_wallet_balance(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Balances of the standard wallet (or the empty DataLayer wallet)."""
    wallet_id = _wallet_id(state, key, request)
    if wallet_id == STANDARD_WALLET_ID:
        numbers = state.balance(key)
        wallet_type = 0
    else:
        numbers = dict.fromkeys(
            (
                "confirmed_wallet_balance",
                "unconfirmed_wallet_balance",
                "spendable_balance",
                "max_send_amount",
                "pending_change",
                "pending_coin_removal_count",
                "unspent_coin_count",
            ),
            0,
        )
        wallet_type = 11
    return {
        "wallet_balance": {
            "asset_id": None,
            "fingerprint": key.fingerprint,
            "pending_approval_balance": None,
            "wallet_id": wallet_id,
            "wallet_type": wallet_type,
            **numbers,
        }
    }


def get_next_address(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """A receive address of the standard wallet; a fresh one when new_address is true."""
    wallet_id = _wallet_id(state, key, request)
    puzzle_hash = state.next_puzzle_hash(key, new=bool(request.get("new_address", False)))
    return {"address": encode_puzzle_hash(puzzle_hash, NETWORK_PREFIX), "wallet_id": wallet_id}


def get_coin_records(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Confirmed coins of the standard wallet (unspent and spent), 50 per call by default."""
    wallet_id = request.get("wallet_id")
    hidden = state.hidden_coin_ids(key)
    coins = [
        coin
        for coin in key.coins.values()
        if coin.confirmed_height > 0 and coin.coin_id not in hidden
    ]
    if wallet_id is not None and int(wallet_id) != STANDARD_WALLET_ID:
        coins = []
    is_spent = request.get("is_spent")
    if is_spent is not None:
        coins = [coin for coin in coins if (coin.spent_height > 0) == bool(is_spent)]
    spent_range = request.get("spent_range")
    if isinstance(spent_range, dict):  # Chia's UInt32Range, both ends included
        low = _int_field(spent_range, "start", 0)
        high = _int_field(spent_range, "stop", 2**32 - 1)
        coins = [coin for coin in coins if low <= coin.spent_height <= high]
    coins.sort(
        key=lambda coin: (coin.confirmed_height, coin.coin_id), reverse=bool(request.get("reverse"))
    )
    offset = _int_field(request, "offset", 0)
    limit = _int_field(request, "limit", 50)
    total = len(coins) if request.get("include_total_count") else None
    return {
        "coin_records": [_coin_record_json(coin) for coin in coins[offset : offset + limit]],
        "total_count": total,
    }


def get_spendable_coins(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Spendable coins plus pending removals and additions."""
    wallet_id = _wallet_id(state, key, request)
    if wallet_id != STANDARD_WALLET_ID:
        return {"confirmed_records": [], "unconfirmed_additions": [], "unconfirmed_removals": []}
    minimum = _int_field(request, "min_coin_amount", 0)
    maximum = request.get("max_coin_amount")
    excluded_amounts = {int(a) for a in request.get("excluded_coin_amounts") or []}
    excluded_ids = {parse_bytes32(c) for c in request.get("excluded_coin_ids") or []}
    spendable = [
        coin
        for coin in state.spendable_coins(key)
        if coin.amount >= minimum
        and (not maximum or coin.amount <= int(maximum))
        and coin.amount not in excluded_amounts
        and coin.coin_id not in excluded_ids
    ]
    removals = [coin for coin in state.visible_coins(key) if coin.reserved_by is not None]
    return {
        "confirmed_records": [_spendable_json(coin) for coin in spendable],
        "unconfirmed_additions": [coin.coin_json() for coin in state.pending_change(key)],
        "unconfirmed_removals": [_spendable_json(coin) for coin in removals],
    }


def get_transactions(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Transactions of one wallet; `confirmed` filters, RELEVANCE puts unconfirmed first."""
    wallet_id = _wallet_id(state, key, request)
    records = [r for r in key.transactions.values() if r.wallet_id == wallet_id]
    confirmed = request.get("confirmed")
    if confirmed is not None:
        records = [r for r in records if r.confirmed == bool(confirmed)]
    if request.get("sort_key") == "RELEVANCE":
        records.sort(key=lambda r: (r.confirmed, -r.confirmed_height, -r.created_at_time))
    else:
        records.sort(key=lambda r: (r.confirmed_height or 1 << 62, r.created_at_time))
    if request.get("reverse"):
        records.reverse()
    start = _int_field(request, "start", 0)
    end = _int_field(request, "end", 50)
    return {
        "transactions": [transaction_json(r) for r in records[start:end]],
        "wallet_id": wallet_id,
    }


def get_transaction(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """One transaction by name."""
    name = parse_bytes32(_field(request, "transaction_id"))
    record = key.transactions.get(name)
    if record is None:
        raise RpcError(f"Transaction 0x{name} not found")
    return {"transaction": transaction_json(record), "transaction_id": prefixed(name)}


def get_wallets(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """The standard wallet, and the DataLayer wallet once it exists."""
    wallets = [
        {
            "authorized_providers": [],
            "data": "",
            "flags_needed": [],
            "id": 1,
            "name": "Chia Wallet",
            "type": 0,
        }
    ]
    if key.dl_wallet:
        wallets.append(
            {
                "authorized_providers": [],
                "data": "",
                "flags_needed": [],
                "id": 2,
                "name": "DataLayer Wallet",
                "type": 11,
            }
        )
    wanted = request.get("type")
    if wanted is not None:
        wallets = [wallet for wallet in wallets if wallet["type"] == int(wanted)]
    return {"fingerprint": key.fingerprint, "wallets": wallets}


def delete_unconfirmed_transactions(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Forget every unconfirmed transaction of a wallet and release their coins."""
    wallet_id = _wallet_id(state, key, request)
    state.delete_unconfirmed_transactions(key, wallet_id)
    return {}


def split_coins(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """Split one coin into `number_of_coins` coins of `amount_per_coin` (plus change)."""
    _wallet_id(state, key, request)
    target = parse_bytes32(_field(request, "target_coin_id"))
    count = _int_field(request, "number_of_coins")
    amount = _int_field(request, "amount_per_coin")
    fee = _int_field(request, "fee", 0)
    state.check_synced(key)
    coin = next((c for c in state.spendable_coins(key) if c.coin_id == target), None)
    if coin is None:
        raise RpcError(f"Could not find coin with ID {target}")
    if count < 1 or amount < 1:
        raise RpcError("number_of_coins and amount_per_coin must be positive")
    if count * amount + fee > coin.amount:
        raise RpcError(f"Coin amount {coin.amount} is less than the total amount of the split")
    payments = [(key.index, state.next_puzzle_hash(key, new=True), amount) for _ in range(count)]
    _op, records = state.submit(key, "split", fee=fee, payments=payments, spend=[coin])
    return {"transactions": [transaction_json(r) for r in records]}


def send_transaction(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Pay an address (another simulated key's address credits that key at the next block)."""
    _wallet_id(state, key, request)
    puzzle_hash = decode_puzzle_hash(str(_field(request, "address")))
    amount = _int_field(request, "amount")
    fee = _int_field(request, "fee", 0)
    if amount < 0:
        raise RpcError("amount must not be negative")
    recipient = state.puzzle_owner.get(puzzle_hash)
    _op, records = state.submit(key, "send", fee=fee, payments=[(recipient, puzzle_hash, amount)])
    record = records[0]
    return {
        "transaction": transaction_json(record),
        "transaction_id": prefixed(record.name),
        "transactions": [transaction_json(r) for r in records],
    }


def get_network_info(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """The simulator network."""
    return {
        "genesis_challenge": state.genesis_challenge,
        "network_name": NETWORK_NAME,
        "network_prefix": NETWORK_PREFIX,
    }


def get_version(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """The Chia version whose behaviour is simulated."""
    return {"version": CHIA_VERSION}


def get_connections(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """One full-node peer on loopback."""
    return {
        "connections": [
            {
                "bytes_read": 0,
                "bytes_written": 0,
                "creation_time": float(state.last_timestamp),
                "last_message_time": float(state.last_timestamp),
                "local_port": 58444,
                "node_id": prefixed(_FULL_NODE_PEER),
                "peak_hash": prefixed(state.genesis_challenge),
                "peak_height": state.height,
                "peak_weight": state.height,
                "peer_host": "127.0.0.1",
                "peer_port": 58444,
                "peer_server_port": 58444,
                "protocol_version": "0.0.37",
                "type": 1,
            }
        ]
    }


def get_height_info(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Chain height and the newest block's timestamp."""
    return {
        "height": state.height,
        "is_transaction_block": None,
        "latest_timestamp": state.last_timestamp,
        "prev_transaction_block_height": None,
    }


def get_logged_in_fingerprint(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """The key this wallet is logged in with."""
    return {"fingerprint": key.fingerprint}


def dl_owned_singletons(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """The newest singleton record of every store this key owns."""
    state.require_dl_wallet(key)
    singletons = []
    for store in state.stores.values():
        if store.owner != key.index:
            continue
        launched = store.launched
        latest = store.data.generations[-1] if launched else None
        generation = store.data.latest if launched else 0
        inner = prefixed(_singleton_hash(store.store_id, "inner", generation))
        singletons.append(
            {
                "coin_id": prefixed(_singleton_hash(store.store_id, "coin", generation)),
                "confirmed": launched,
                "confirmed_at_height": latest.height if latest else 0,
                "generation": generation,
                "inner_puzzle_hash": inner,
                "launcher_id": prefixed(store.store_id),
                "lineage_proof": {
                    "amount": 1,
                    "inner_puzzle_hash": inner,
                    "parent_name": prefixed(_singleton_hash(store.store_id, "parent", generation)),
                },
                "root": prefixed(latest.root if latest else "0" * 64),
                "timestamp": latest.timestamp if latest else store.created_at,
            }
        )
    return {"count": len(singletons), "singletons": singletons}


def _singleton_hash(store_id: str, part: str, generation: int) -> str:
    import hashlib

    return hashlib.sha256(f"{store_id}:{part}:{generation}".encode()).hexdigest()


HANDLERS: dict[str, Handler] = {
    "get_routes": get_routes,
    "get_sync_status": get_sync_status,
    "get_wallet_balance": get_wallet_balance,
    "get_next_address": get_next_address,
    "get_coin_records": get_coin_records,
    "get_spendable_coins": get_spendable_coins,
    "get_transactions": get_transactions,
    "get_transaction": get_transaction,
    "get_wallets": get_wallets,
    "delete_unconfirmed_transactions": delete_unconfirmed_transactions,
    "split_coins": split_coins,
    "send_transaction": send_transaction,
    "get_network_info": get_network_info,
    "get_version": get_version,
    "get_connections": get_connections,
    "get_height_info": get_height_info,
    "get_logged_in_fingerprint": get_logged_in_fingerprint,
    "dl_owned_singletons": dl_owned_singletons,
}
