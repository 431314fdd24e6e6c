"""Request and response models of the DataLayer RPC (port 8562), shaped as chia-rpc.md records.

Every store id and hash is bare lowercase hex here, whichever spelling Chia used.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field

from services.chia.hexutil import Hash32, HexStr, StoreId, normalize_hex
from services.chia.models.base import ChiaModel, ChiaRequest, TransactionRecord


def _none_as_zero(value: object) -> object:
    return 0 if value is None else value


# --- requests ------------------------------------------------------------------------------


class Change(ChiaRequest):
    """One changelist entry of batch_update; key and value are hex.

    Build entries with `insert`/`upsert`/`delete`: they raise InvalidHex for a bad key or value.
    """

    action: Literal["insert", "delete", "upsert"]
    key: HexStr
    value: HexStr | None = None

    @classmethod
    def insert(cls, key: str, value: str) -> Change:
        """Insert a new key (fails with 'KeyId(n)' if it exists)."""
        return cls(action="insert", key=normalize_hex(key), value=normalize_hex(value))

    @classmethod
    def upsert(cls, key: str, value: str) -> Change:
        """Insert or replace a key."""
        return cls(action="upsert", key=normalize_hex(key), value=normalize_hex(value))

    @classmethod
    def delete(cls, key: str) -> Change:
        """Delete a key (an error if nothing changes)."""
        return cls(action="delete", key=normalize_hex(key))


class StoreRequest(ChiaRequest):
    """`{id}`: get_root, get_local_root, get_root_history, get_sync_status, get_mirrors."""

    id: StoreId


class CreateDataStoreRequest(ChiaRequest):
    """create_data_store; `verbose` makes Chia return the transactions too."""

    fee: int = Field(ge=0)
    verbose: bool | None = None


class BatchUpdateRequest(ChiaRequest):
    """batch_update."""

    id: StoreId
    changelist: list[Change]
    fee: int | None = Field(default=None, ge=0)
    submit_on_chain: bool | None = None


class GetKeysValuesRequest(ChiaRequest):
    """get_keys_values and get_keys; pagination only when `page` is set."""

    id: StoreId
    root_hash: Hash32 | None = None
    page: int | None = Field(default=None, ge=0)
    max_page_size: int | None = Field(default=None, ge=1)


class GetValueRequest(ChiaRequest):
    """get_value."""

    id: StoreId
    key: HexStr
    root_hash: Hash32 | None = None


class GetRootsRequest(ChiaRequest):
    """get_roots."""

    ids: list[StoreId]


class GetKvDiffRequest(ChiaRequest):
    """get_kv_diff between two locally held roots."""

    id: StoreId
    hash_1: Hash32
    hash_2: Hash32
    page: int | None = Field(default=None, ge=0)
    max_page_size: int | None = Field(default=None, ge=1)


class SubscribeRequest(ChiaRequest):
    """subscribe; without `urls` Chia uses the on-chain mirrors."""

    id: StoreId
    urls: list[str] | None = None
    fee: int | None = Field(default=None, ge=0)


class UnsubscribeRequest(ChiaRequest):
    """unsubscribe; `retain` keeps the downloaded files (not the roots)."""

    id: StoreId
    retain: bool | None = None


class RemoveSubscriptionsRequest(ChiaRequest):
    """remove_subscriptions: drop these URLs (and their back-off) from a subscription."""

    id: StoreId
    urls: list[str]


class AddMirrorRequest(ChiaRequest):
    """add_mirror: announce URLs for a store with a coin of `amount` mojos."""

    id: StoreId
    urls: list[str]
    amount: int = Field(ge=1)
    fee: int | None = Field(default=None, ge=0)


class DeleteMirrorRequest(ChiaRequest):
    """delete_mirror by the mirror's coin id."""

    coin_id: Hash32
    fee: int | None = Field(default=None, ge=0)


class ClearPendingRootsRequest(ChiaRequest):
    """clear_pending_roots (note the field is `store_id`, not `id`)."""

    store_id: StoreId


# --- responses -----------------------------------------------------------------------------


class RoutesResponse(ChiaModel):
    """get_routes."""

    routes: list[str] = Field(default_factory=list)


class CreateDataStoreResponse(ChiaModel):
    """create_data_store: the new store id, and its transactions when `verbose`."""

    id: StoreId
    txs: list[TransactionRecord] = Field(default_factory=list)

    @property
    def tx_ids(self) -> list[str]:
        """The transaction ids of the creation, for rejection tracking."""
        return [tx.name for tx in self.txs]


class BatchUpdateResponse(ChiaModel):
    """batch_update: the id of the root-update transaction (None when not submitted)."""

    tx_id: Hash32 | None = None


class KeyValue(ChiaModel):
    """One entry of get_keys_values (hex key and value)."""

    key: HexStr
    value: HexStr
    hash: Hash32 | None = None
    atom: Any = None


class KeysValuesResponse(ChiaModel):
    """get_keys_values, in tree order (not stable: sort before comparing)."""

    keys_values: list[KeyValue]
    root_hash: Hash32 | None = None
    total_pages: int | None = None
    total_bytes: int | None = None


class KeysResponse(ChiaModel):
    """get_keys."""

    keys: list[HexStr]
    root_hash: Hash32 | None = None
    total_pages: int | None = None
    total_bytes: int | None = None


class ValueResponse(ChiaModel):
    """get_value."""

    value: HexStr | None = None


class Root(ChiaModel):
    """get_root: the latest on-chain root; `hash` may be null."""

    hash: Hash32 | None = None
    confirmed: bool
    timestamp: int


class StoreRoot(Root):
    """One entry of get_roots."""

    id: StoreId


class LocalRootResponse(ChiaModel):
    """get_local_root: the newest root held locally (null while the first write is pending)."""

    hash: Hash32 | None = None


class RootsResponse(ChiaModel):
    """get_roots."""

    root_hashes: list[StoreRoot]


class RootHistoryEntry(ChiaModel):
    """One generation in get_root_history (oldest first)."""

    root_hash: Hash32
    confirmed: bool
    timestamp: int


class RootHistoryResponse(ChiaModel):
    """get_root_history (empty for an unknown store)."""

    root_history: list[RootHistoryEntry]


class KvDiffType(StrEnum):
    """The change kind of a kv diff entry; an upsert is a DELETE plus an INSERT."""

    INSERT = "INSERT"
    DELETE = "DELETE"


class KvDiffEntry(ChiaModel):
    """One entry of get_kv_diff."""

    type: KvDiffType
    key: HexStr
    value: HexStr


class KvDiffResponse(ChiaModel):
    """get_kv_diff (order differs between nodes: sort before comparing)."""

    diff: list[KvDiffEntry]
    total_pages: int | None = None
    total_bytes: int | None = None


class SyncStatus(ChiaModel):
    """get_sync_status of a subscribed store: local generation versus the chain's."""

    generation: int
    root_hash: Hash32
    target_generation: int
    target_root_hash: Hash32

    @property
    def synced(self) -> bool:
        """The local generation has reached the on-chain one."""
        return self.generation >= self.target_generation


class SyncStatusResponse(ChiaModel):
    """get_sync_status envelope."""

    sync_status: SyncStatus


class StoreIdsResponse(ChiaModel):
    """subscriptions and get_owned_stores."""

    store_ids: list[StoreId]


class Mirror(ChiaModel):
    """One mirror announcement; `confirmed_at_height` is 0 while pending."""

    coin_id: Hash32
    launcher_id: StoreId
    amount: int
    urls: list[str]
    ours: bool
    confirmed_at_height: Annotated[int, BeforeValidator(_none_as_zero)] = 0

    @property
    def confirmed(self) -> bool:
        """The mirror coin is on chain (Chia has no `confirmed` flag for mirrors)."""
        return self.confirmed_at_height > 0


class MirrorsResponse(ChiaModel):
    """get_mirrors (empty for an unknown store)."""

    mirrors: list[Mirror]


class PendingRoot(ChiaModel):
    """The root removed by clear_pending_roots (Chia 2.7.5 names the store `tree_id`)."""

    store_id: StoreId | None = Field(
        default=None, validation_alias=AliasChoices("tree_id", "store_id")
    )
    node_hash: Hash32 | None = None
    generation: int | None = None
    status: int | None = None


class ClearPendingRootsResponse(ChiaModel):
    """clear_pending_roots: `root` is None when there was nothing to clear."""

    root: PendingRoot | None = None

    @property
    def cleared(self) -> bool:
        """A pending root was removed."""
        return self.root is not None
