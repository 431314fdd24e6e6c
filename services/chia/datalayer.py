"""Async client of the Chia DataLayer RPC (default https://localhost:8562).

Store ids and hashes are validated and normalised before anything is sent (InvalidStoreId,
InvalidHex), and come back as bare lowercase hex. Reads retry transport failures; writes
(create_data_store, batch_update, subscribe, unsubscribe, remove_subscriptions, add_mirror,
delete_mirror, clear_pending_roots) retry only when the request provably never left.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import httpx

from services.chia.client import ChiaRpcClient
from services.chia.errors import Service
from services.chia.hexutil import normalize_hash, normalize_hex, normalize_store_id
from services.chia.models.base import EmptyResponse
from services.chia.models.datalayer import (
    AddMirrorRequest,
    BatchUpdateRequest,
    BatchUpdateResponse,
    Change,
    ClearPendingRootsRequest,
    ClearPendingRootsResponse,
    CreateDataStoreRequest,
    CreateDataStoreResponse,
    DeleteMirrorRequest,
    GetKeysValuesRequest,
    GetKvDiffRequest,
    GetRootsRequest,
    GetValueRequest,
    KeysResponse,
    KeysValuesResponse,
    KvDiffResponse,
    LocalRootResponse,
    Mirror,
    MirrorsResponse,
    RemoveSubscriptionsRequest,
    Root,
    RootHistoryEntry,
    RootHistoryResponse,
    RootsResponse,
    RoutesResponse,
    StoreIdsResponse,
    StoreRequest,
    StoreRoot,
    SubscribeRequest,
    SyncStatus,
    SyncStatusResponse,
    UnsubscribeRequest,
    ValueResponse,
)

#: CADT's DataLayer timeout (cadt-domain 4.1): a batch_update of a large store can be slow.
DEFAULT_DATALAYER_TIMEOUT_SECONDS = 1800.0


def _optional_hash(value: str | None) -> str | None:
    return None if value is None else normalize_hash(value)


class DataLayerClient(ChiaRpcClient):
    """Typed async client of the DataLayer RPC."""

    service: ClassVar[Service] = "datalayer"

    def __init__(
        self,
        url: str,
        *,
        ssl_folder: Path | str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = DEFAULT_DATALAYER_TIMEOUT_SECONDS,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            ssl_folder=ssl_folder,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry_attempts=retry_attempts,
            retry_max_wait=retry_max_wait,
            transport=transport,
        )

    # --- reads -----------------------------------------------------------------------------

    async def get_routes(self) -> list[str]:
        """The service's routes; CADT's availability probe."""
        return (await self.call("get_routes", None, RoutesResponse, write=False)).routes

    async def get_keys_values(
        self,
        store_id: str,
        *,
        root_hash: str | None = None,
        page: int | None = None,
        max_page_size: int | None = None,
    ) -> KeysValuesResponse:
        """Keys and values of the local root (or `root_hash`), optionally one page of them."""
        request = GetKeysValuesRequest(
            id=normalize_store_id(store_id),
            root_hash=_optional_hash(root_hash),
            page=page,
            max_page_size=max_page_size,
        )
        return await self.call("get_keys_values", request, KeysValuesResponse, write=False)

    async def get_keys(
        self,
        store_id: str,
        *,
        root_hash: str | None = None,
        page: int | None = None,
        max_page_size: int | None = None,
    ) -> KeysResponse:
        """Keys of the local root (or `root_hash`), optionally one page of them."""
        request = GetKeysValuesRequest(
            id=normalize_store_id(store_id),
            root_hash=_optional_hash(root_hash),
            page=page,
            max_page_size=max_page_size,
        )
        return await self.call("get_keys", request, KeysResponse, write=False)

    async def get_value(
        self, store_id: str, key: str, *, root_hash: str | None = None
    ) -> str | None:
        """The hex value of hex `key`; Chia errors with 'Key not found' when it is absent."""
        request = GetValueRequest(
            id=normalize_store_id(store_id),
            key=normalize_hex(key),
            root_hash=_optional_hash(root_hash),
        )
        return (await self.call("get_value", request, ValueResponse, write=False)).value

    async def get_root(self, store_id: str) -> Root:
        """The latest on-chain root of a store ('Failed to get root' until it is confirmed)."""
        request = StoreRequest(id=normalize_store_id(store_id))
        return await self.call("get_root", request, Root, write=False)

    async def get_local_root(self, store_id: str) -> str | None:
        """The newest root held locally, the one reads are answered from."""
        request = StoreRequest(id=normalize_store_id(store_id))
        return (await self.call("get_local_root", request, LocalRootResponse, write=False)).hash

    async def get_roots(self, store_ids: Sequence[str]) -> list[StoreRoot]:
        """The latest roots of several stores (unknown stores are left out)."""
        request = GetRootsRequest(ids=[normalize_store_id(store_id) for store_id in store_ids])
        return (await self.call("get_roots", request, RootsResponse, write=False)).root_hashes

    async def get_root_history(self, store_id: str) -> list[RootHistoryEntry]:
        """Every generation's root, oldest first (empty for an unknown store)."""
        request = StoreRequest(id=normalize_store_id(store_id))
        response = await self.call("get_root_history", request, RootHistoryResponse, write=False)
        return response.root_history

    async def get_kv_diff(
        self,
        store_id: str,
        hash_1: str,
        hash_2: str,
        *,
        page: int | None = None,
        max_page_size: int | None = None,
    ) -> KvDiffResponse:
        """Changes from root `hash_1` to root `hash_2` (both must be held locally)."""
        request = GetKvDiffRequest(
            id=normalize_store_id(store_id),
            hash_1=normalize_hash(hash_1),
            hash_2=normalize_hash(hash_2),
            page=page,
            max_page_size=max_page_size,
        )
        return await self.call("get_kv_diff", request, KvDiffResponse, write=False)

    async def get_sync_status(self, store_id: str) -> SyncStatus:
        """Local versus on-chain generation of a subscribed store."""
        request = StoreRequest(id=normalize_store_id(store_id))
        response = await self.call("get_sync_status", request, SyncStatusResponse, write=False)
        return response.sync_status

    async def subscriptions(self) -> list[str]:
        """Ids of the subscribed stores."""
        return (await self.call("subscriptions", None, StoreIdsResponse, write=False)).store_ids

    async def get_owned_stores(self) -> list[str]:
        """Ids of the confirmed stores this wallet owns."""
        response = await self.call("get_owned_stores", None, StoreIdsResponse, write=False)
        return response.store_ids

    async def get_mirrors(self, store_id: str) -> list[Mirror]:
        """Mirror announcements of a store, ours and others' (empty for an unknown store)."""
        request = StoreRequest(id=normalize_store_id(store_id))
        return (await self.call("get_mirrors", request, MirrorsResponse, write=False)).mirrors

    # --- writes ----------------------------------------------------------------------------

    async def create_data_store(self, *, fee: int, verbose: bool = True) -> CreateDataStoreResponse:
        """Create a store; with `verbose` the creation's transactions come back too."""
        request = CreateDataStoreRequest(fee=fee, verbose=verbose or None)
        return await self.call("create_data_store", request, CreateDataStoreResponse, write=True)

    async def batch_update(
        self,
        store_id: str,
        changelist: Sequence[Change],
        *,
        fee: int,
        submit_on_chain: bool | None = None,
    ) -> BatchUpdateResponse:
        """Apply a changelist as one new root (one pending root per store at a time)."""
        request = BatchUpdateRequest(
            id=normalize_store_id(store_id),
            changelist=list(changelist),
            fee=fee,
            submit_on_chain=submit_on_chain,
        )
        return await self.call("batch_update", request, BatchUpdateResponse, write=True)

    async def subscribe(
        self, store_id: str, *, urls: Sequence[str] | None = None, fee: int | None = None
    ) -> None:
        """Subscribe to a store; without `urls` Chia downloads from its on-chain mirrors."""
        request = SubscribeRequest(
            id=normalize_store_id(store_id),
            urls=None if urls is None else list(urls),
            fee=fee,
        )
        await self.call("subscribe", request, EmptyResponse, write=True)

    async def unsubscribe(self, store_id: str, *, retain: bool = False) -> None:
        """Queue an unsubscribe (applied at the next DataLayer cycle)."""
        request = UnsubscribeRequest(id=normalize_store_id(store_id), retain=retain)
        await self.call("unsubscribe", request, EmptyResponse, write=True)

    async def remove_subscriptions(self, store_id: str, urls: Sequence[str]) -> None:
        """Drop URLs (and their download back-off) from a subscription."""
        request = RemoveSubscriptionsRequest(id=normalize_store_id(store_id), urls=list(urls))
        await self.call("remove_subscriptions", request, EmptyResponse, write=True)

    async def add_mirror(
        self, store_id: str, urls: Sequence[str], *, amount: int, fee: int
    ) -> None:
        """Announce `urls` as a mirror of the store with a coin of `amount` mojos."""
        request = AddMirrorRequest(
            id=normalize_store_id(store_id), urls=list(urls), amount=amount, fee=fee
        )
        await self.call("add_mirror", request, EmptyResponse, write=True)

    async def delete_mirror(self, coin_id: str, *, fee: int) -> None:
        """Remove one of our mirrors, by the mirror's coin id."""
        request = DeleteMirrorRequest(coin_id=normalize_hash(coin_id), fee=fee)
        await self.call("delete_mirror", request, EmptyResponse, write=True)

    async def clear_pending_roots(self, store_id: str) -> ClearPendingRootsResponse:
        """Drop an orphaned pending root of a store; `.cleared` is False if there was none."""
        request = ClearPendingRootsRequest(store_id=normalize_store_id(store_id))
        # Chia answers "nothing to clear" as {"success": false, "root": null} with no error.
        return await self.call(
            "clear_pending_roots",
            request,
            ClearPendingRootsResponse,
            write=True,
            unsuccessful_without_error_ok=True,
        )
