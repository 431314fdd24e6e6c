"""DataLayer RPC methods of one simulated key, shaped like chia-blockchain 2.7.5's.

Each handler takes the state, the key and the decoded JSON body and returns the response
fields (the caller adds `success`). Errors are `RpcError`s carrying Chia's exact messages;
those the wallet produces (`WalletRpcError`) are nested by the caller as
"RPC response failure: {...}" because that is how DataLayer relays them.
Hex follows chia-rpc.md pitfall 8: `0x` on get_keys_values/get_keys/get_root(s)/
get_root_history/get_mirrors/get_local_root, bare on get_value/get_kv_diff/get_sync_status,
subscriptions, get_owned_stores and create_data_store.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from services.simulator.errors import RpcError
from services.simulator.hexfmt import ZERO_HASH, parse_bytes32, parse_hex, prefixed
from services.simulator.state import KeyState, SimulatorState, Store
from services.simulator.store import StoreData, leaf_hash
from services.simulator.wallet_api import transaction_json

Handler = Callable[[SimulatorState, KeyState, dict[str, Any]], dict[str, Any]]
T = TypeVar("T")

#: Chia's default page size when `page` is given without `max_page_size` (40 MiB).
DEFAULT_MAX_PAGE_SIZE = 40 * 1024 * 1024
#: Wire entries are big (~0.5 KB a pair): keep only the newest two generations per store.
_ENTRY_CACHE_SIZE = 2
_entry_cache: weakref.WeakKeyDictionary[StoreData, OrderedDict[int, list[dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)


# ---------------------------------------------------------------------------------- helpers
def field(request: dict[str, Any], name: str) -> Any:
    """A required request field; a missing one fails with the bare key name like Chia's KeyError."""
    if name not in request:
        raise RpcError(name)
    return request[name]


def fee_of(request: dict[str, Any]) -> int:
    """The optional `fee` field (mojos)."""
    fee = request.get("fee")
    if fee is None:
        return 0
    if isinstance(fee, bool) or not isinstance(fee, int | str):
        raise RpcError(f"invalid fee {fee!r}")
    value = int(fee)
    if value < 0:
        raise RpcError(f"Value {value} does not fit into uint64")
    return value


def _store_id(request: dict[str, Any], name: str = "id") -> str:
    return parse_bytes32(field(request, name))


def _optional_root(request: dict[str, Any]) -> str | None:
    value = request.get("root_hash")
    return None if value is None else parse_bytes32(value)


def _no_generations(store_id: str) -> RpcError:
    return RpcError(f"No generations found for store ID: {store_id}")


def _readable(state: SimulatorState, key: KeyState, store_id: str) -> tuple[Store, int]:
    """The store and the generation this key holds locally, or Chia's "No generations" error."""
    store = state.stores.get(store_id)
    if store is None or not state.tracks(key, store):
        raise _no_generations(store_id)
    local = state.local_generation(key, store)
    if local is None:
        raise _no_generations(store_id)
    return store, local


def _generation_at(store: Store, local: int, root: str | None) -> int | None:
    """The generation of `root` if this key has it locally (None root: the local one)."""
    if root is None:
        return local
    generation = store.data.generation_of(root)
    if generation is None or generation > local:
        return None
    return generation


def _paginate(
    items: list[T], sizes: list[int], tiebreak: list[str], page: int, max_page_size: int
) -> tuple[list[T], int, int]:
    """Chia's byte-based pages: biggest items first, greedily packed; (page, pages, bytes)."""
    order = sorted(range(len(items)), key=lambda index: (-sizes[index], tiebreak[index]))
    pages: list[list[int]] = []
    used = 0
    for index in order:
        size = sizes[index]
        if size > max_page_size:
            raise RpcError(
                f"Cannot paginate data, item size is larger than max page size: {size} "
                f"{max_page_size}"
            )
        if pages and used + size <= max_page_size:
            pages[-1].append(index)
            used += size
        else:
            pages.append([index])
            used = size
    chosen = pages[page] if 0 <= page < len(pages) else []
    return [items[index] for index in chosen], len(pages), sum(sizes)


def _page_args(request: dict[str, Any]) -> tuple[int, int] | None:
    page = request.get("page")
    if page is None:
        return None
    size = request.get("max_page_size")
    return int(page), DEFAULT_MAX_PAGE_SIZE if size is None else int(size)


def _entries(data: StoreData, generation: int) -> list[dict[str, Any]]:
    """Wire entries of a generation (cached: hashing every pair is the costly part)."""
    # Confirmed generations never change, so a cached list stays right for the store's lifetime.
    cache = _entry_cache.setdefault(data, OrderedDict())
    cached = cache.get(generation)
    if cached is not None:
        cache.move_to_end(generation)
        return cached
    content = data.snapshot(generation)
    entries = [
        {
            "atom": None,
            "hash": f"0x{leaf_hash(key, value)}",
            "key": f"0x{key}",
            "value": f"0x{value}",
        }
        for key, value in content.items()
    ]
    cache[generation] = entries
    if len(cache) > _ENTRY_CACHE_SIZE:
        cache.popitem(last=False)
    return entries


def _shuffled(state: SimulatorState, items: list[T]) -> list[T]:
    # Real Chia returns tree order, different on every call: never let clients rely on order.
    out = list(items)
    if state.config.shuffle_reads:
        state.rng.shuffle(out)
    return out


# ---------------------------------------------------------------------------------- methods
def get_routes(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """The routes this service answers."""
    return {"routes": [f"/{name}" for name in HANDLERS]}


def create_data_store(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Launch a store; it is readable after the next block."""
    store_id, records = state.create_store(key, fee_of(request))
    response: dict[str, Any] = {"id": store_id}
    if request.get("verbose", False):
        # Answered before the wallet sent them anywhere: `sent_to` is still empty.
        response["txs"] = [transaction_json(record, sent=False) for record in records]
    return response


def get_owned_stores(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Confirmed stores this key's DataLayer wallet owns (bare hex)."""
    state.require_dl_wallet(key)
    owned = sorted(s.store_id for s in state.stores.values() if s.owner == key.index and s.launched)
    return {"store_ids": owned}


def batch_update(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """Submit a changelist as the store's one pending root."""
    changelist = field(request, "changelist")
    store_id = _store_id(request)
    if request.get("submit_on_chain", True) is False:
        raise RpcError("submit_on_chain=false (local pending batches) is not simulated")
    tx_name = state.batch_update(key, store_id, changelist, fee_of(request))
    return {"tx_id": prefixed(tx_name)}


def get_value(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """One value (bare hex) at the local root or a given one."""
    store_id = _store_id(request)
    wanted = parse_hex(field(request, "key"))
    root = _optional_root(request)
    state.require_dl_wallet(key)
    store, local = _readable(state, key, store_id)
    generation = _generation_at(store, local, root)
    # Chia says "Key not found" also for a root it has not downloaded yet (misleading, but real).
    value = None if generation is None else store.data.snapshot(generation).get(wanted)
    if value is None:
        raise RpcError(f"Key not found: {wanted}")
    return {"value": value}


def _keyed_read(
    state: SimulatorState, key: KeyState, request: dict[str, Any], missing_message: str
) -> tuple[Store, int | None, str | None]:
    store_id = _store_id(request)
    root = _optional_root(request)
    state.require_dl_wallet(key)
    store, local = _readable(state, key, store_id)
    if root == ZERO_HASH:
        return store, None, root
    generation = _generation_at(store, local, root)
    if generation is None:
        raise RpcError(f"{missing_message} {root}")
    return store, generation, root


def get_keys_values(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """All pairs at the local root (or root_hash), in unstable order; optionally paginated."""
    store, generation, _root = _keyed_read(state, key, request, "Can't find keys and values for")
    entries = [] if generation is None else _entries(store.data, generation)
    paging = _page_args(request)
    if paging is None:
        return {"keys_values": _shuffled(state, entries)}
    page, max_page_size = paging
    sizes = [(len(entry["key"]) + len(entry["value"]) - 4) // 2 for entry in entries]
    chosen, total_pages, total_bytes = _paginate(
        entries, sizes, [entry["hash"] for entry in entries], page, max_page_size
    )
    root_hash = store.data.generations[generation].root if generation is not None else ZERO_HASH
    return {
        "keys_values": _shuffled(state, chosen),
        "root_hash": prefixed(root_hash),
        "total_bytes": total_bytes,
        "total_pages": total_pages,
    }


def get_keys(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """All keys (0x hex) at the local root (or root_hash); optionally paginated."""
    store, generation, _root = _keyed_read(state, key, request, "Can't find keys for")
    keys = [] if generation is None else list(store.data.snapshot(generation))
    paging = _page_args(request)
    if paging is None:
        return {"keys": _shuffled(state, [prefixed(k) for k in keys])}
    page, max_page_size = paging
    chosen, total_pages, total_bytes = _paginate(
        keys, [len(k) // 2 for k in keys], keys, page, max_page_size
    )
    root_hash = store.data.generations[generation].root if generation is not None else ZERO_HASH
    return {
        "keys": _shuffled(state, [prefixed(k) for k in chosen]),
        "root_hash": prefixed(root_hash),
        "total_bytes": total_bytes,
        "total_pages": total_pages,
    }


def _chain_root(state: SimulatorState, key: KeyState, store_id: str) -> dict[str, Any] | None:
    store = state.stores.get(store_id)
    if store is None or not store.launched or not state.tracks(key, store):
        return None
    latest = store.data.generations[-1]
    return {"confirmed": True, "hash": prefixed(latest.root), "timestamp": latest.timestamp}


def get_root(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """The newest confirmed root on chain (pending roots are invisible)."""
    store_id = _store_id(request)
    state.require_dl_wallet(key)
    root = _chain_root(state, key, store_id)
    if root is None:
        raise RpcError(f"Failed to get root for {store_id}")
    return root


def get_roots(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """get_root for several ids; unknown ones are left out."""
    ids = field(request, "ids")
    state.require_dl_wallet(key)
    roots = []
    for raw in ids:
        store_id = parse_bytes32(raw)
        root = _chain_root(state, key, store_id)
        if root is not None:
            roots.append({"id": prefixed(store_id), **root})
    return {"root_hashes": roots}


def get_local_root(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """The root of the local copy; null while it is the empty launch root.

    A store whose launch is still pending has no committed root yet: "No generations found".
    """
    store_id = _store_id(request)
    state.require_dl_wallet(key)
    store, local = _readable(state, key, store_id)
    root = store.data.generations[local].root
    # Chia has no local root row for the empty launch generation.
    return {"hash": None if root == ZERO_HASH else prefixed(root)}


def get_root_history(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Every root the key's wallet knows, oldest first; empty for an unknown store.

    The owner's wallet also lists its own pending root (launch or update) at the end, with
    `confirmed: false` and timestamp 0, as Chia's dl_history does; other keys see the chain only.
    """
    store_id = _store_id(request)
    state.require_dl_wallet(key)
    store = state.stores.get(store_id)
    if store is None or not state.tracks(key, store):
        return {"root_history": []}
    history = [
        {"confirmed": True, "root_hash": prefixed(g.root), "timestamp": g.timestamp}
        for g in store.data.generations
    ]
    pending = store.pending
    if store.owner == key.index and pending is not None:
        root = ZERO_HASH if pending.planned is None else pending.planned.root
        history.append({"confirmed": False, "root_hash": prefixed(root), "timestamp": 0})
    return {"root_history": history}


def get_kv_diff(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """INSERT/DELETE records (bare hex) from hash_1 to hash_2; both must be local."""
    store_id = _store_id(request)
    hash_1 = parse_bytes32(field(request, "hash_1"))
    hash_2 = parse_bytes32(field(request, "hash_2"))
    state.require_dl_wallet(key)
    store = state.stores.get(store_id)
    local = None
    if store is not None and state.tracks(key, store):
        local = state.local_generation(key, store)
    generations = []
    for wanted in (hash_1, hash_2):
        generation = (
            None if store is None or local is None else _generation_at(store, local, wanted)
        )
        if generation is None:
            raise RpcError(f"Unable to diff: Can't find keys and values for {wanted}")
        generations.append(generation)
    assert store is not None
    records = [{"key": k, "type": kind, "value": v} for kind, k, v in store.data.diff(*generations)]
    paging = _page_args(request)
    if paging is None:
        return {"diff": _shuffled(state, records)}
    page, max_page_size = paging
    sizes = [(len(r["key"]) + len(r["value"])) // 2 for r in records]
    chosen, total_pages, total_bytes = _paginate(
        records, sizes, [r["type"] + r["key"] for r in records], page, max_page_size
    )
    return {
        "diff": _shuffled(state, chosen),
        "total_bytes": total_bytes,
        "total_pages": total_pages,
    }


def get_sync_status(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Local generation against the chain's (bare hex roots)."""
    store_id = _store_id(request)
    state.require_dl_wallet(key)
    store = state.stores.get(store_id)
    local = None
    if store is not None and state.tracks(key, store):
        local = state.local_generation(key, store)
    if store is None or local is None:
        raise RpcError(f"No store id stored in the local database for {store_id}")
    lost = store.owner == key.index and store_id in state.faults.lost_data
    target = store.data.generations[-1]
    return {
        "sync_status": {
            "generation": local,
            "root_hash": ZERO_HASH if lost else store.data.generations[local].root,
            "target_generation": store.data.latest,
            "target_root_hash": target.root,
        }
    }


def _subscription_id(request: dict[str, Any]) -> str:
    if request.get("id") is None:
        raise RpcError("missing store id in request")
    return parse_bytes32(request["id"])


def subscribe(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """Track a store; the first download happens at a later manage-data cycle."""
    store_id = _subscription_id(request)
    urls = request.get("urls") or []
    state.subscribe(key, store_id, [str(url) for url in urls])
    return {}


def unsubscribe(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """Queue an unsubscribe; applied at the key's next manage-data cycle."""
    store_id = _subscription_id(request)
    state.unsubscribe(key, store_id, bool(request.get("retain", False)))
    return {}


def remove_subscriptions(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Drop URLs of a subscription; this resets their download back-off."""
    store_id = _subscription_id(request)
    urls = field(request, "urls")
    state.remove_subscriptions(key, store_id, [str(url) for url in urls])
    return {}


def subscriptions(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """Subscribed store ids (bare hex), including ones whose unsubscribe is still queued."""
    return {"store_ids": list(key.subscriptions)}


def add_mirror(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """Create a mirror coin announcing URLs for a store."""
    store_id = _store_id(request)
    urls = field(request, "urls")
    amount = int(field(request, "amount"))
    state.add_mirror(key, store_id, [str(url) for url in urls], amount, fee_of(request))
    return {}


def delete_mirror(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """Spend one of our mirror coins."""
    coin_id = parse_bytes32(field(request, "coin_id"))
    state.delete_mirror(key, coin_id, fee_of(request))
    return {}


def get_mirrors(state: SimulatorState, key: KeyState, request: dict[str, Any]) -> dict[str, Any]:
    """Confirmed mirrors of a store this key tracks (a new mirror shows once in a block)."""
    store_id = _store_id(request)
    state.require_dl_wallet(key)
    return {
        "mirrors": [
            {
                "amount": mirror.amount,
                "coin_id": prefixed(mirror.coin_id),
                "confirmed_at_height": mirror.confirmed_at_height,
                "launcher_id": prefixed(mirror.launcher_id),
                "ours": mirror.creator_key == key.index,
                "urls": list(mirror.urls),
            }
            for mirror in state.mirrors_for(key, store_id)
        ]
    }


def clear_pending_roots(
    state: SimulatorState, key: KeyState, request: dict[str, Any]
) -> dict[str, Any]:
    """Forget a pending root; success false (and root null) when there is none."""
    store_id = _store_id(request, "store_id")
    cleared = state.clear_pending_roots(key, store_id)
    if cleared is None:
        return {"root": None, "success": False}
    node_hash = cleared.planned.root if cleared.planned is not None else None
    # Chia 2.7.5 returns its Root row as is: `tree_id`, bare hex.
    return {
        "root": {
            "generation": cleared.generation,
            "node_hash": node_hash,
            "status": 1,
            "tree_id": store_id,
        },
        "success": True,
    }


HANDLERS: dict[str, Handler] = {
    "get_routes": get_routes,
    "create_data_store": create_data_store,
    "get_owned_stores": get_owned_stores,
    "batch_update": batch_update,
    "get_value": get_value,
    "get_keys": get_keys,
    "get_keys_values": get_keys_values,
    "get_root": get_root,
    "get_local_root": get_local_root,
    "get_roots": get_roots,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
    "add_mirror": add_mirror,
    "delete_mirror": delete_mirror,
    "get_mirrors": get_mirrors,
    "remove_subscriptions": remove_subscriptions,
    "subscriptions": subscriptions,
    "get_kv_diff": get_kv_diff,
    "get_root_history": get_root_history,
    "get_sync_status": get_sync_status,
    "clear_pending_roots": clear_pending_roots,
}

#: DataLayer methods that go through the wallet: injected failures are nested by default.
WALLET_BACKED = frozenset(
    {
        "create_data_store",
        "batch_update",
        "add_mirror",
        "delete_mirror",
        "subscribe",
        "get_owned_stores",
        "get_mirrors",
        "get_root",
        "get_roots",
        "get_root_history",
    }
)
