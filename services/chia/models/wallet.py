"""Request and response models of the Wallet RPC (port 9256), shaped as chia-rpc.md records."""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from services.chia.hexutil import Hash32, StoreId
from services.chia.models.base import ChiaModel, ChiaRequest, Coin, TransactionRecord


def _none_as_zero(value: object) -> object:
    return 0 if value is None else value


class WalletType(IntEnum):
    """The wallet types the gateway looks for in get_wallets (chia WalletType)."""

    STANDARD_WALLET = 0
    DATA_LAYER = 11


# --- requests ------------------------------------------------------------------------------


class WalletIdRequest(ChiaRequest):
    """`{wallet_id}`: get_wallet_balance, delete_unconfirmed_transactions."""

    wallet_id: int = Field(ge=1)


class GetNextAddressRequest(ChiaRequest):
    """get_next_address."""

    wallet_id: int = Field(ge=1)
    new_address: bool = False


class HeightRange(ChiaRequest):
    """Chia's UInt32Range: heights `start` to `stop`, both included."""

    start: int = Field(default=0, ge=0)
    stop: int = Field(default=2**32 - 1, ge=0)


#: spent_range of the coins not spent yet (Chia's `unspent_range`: spent height 0).
UNSPENT = HeightRange(start=0, stop=0)


class GetCoinRecordsRequest(ChiaRequest):
    """get_coin_records; every filter is optional."""

    wallet_id: int | None = Field(default=None, ge=1)
    limit: int | None = Field(default=None, ge=1)
    offset: int | None = Field(default=None, ge=0)
    spent_range: HeightRange | None = None
    include_total_count: bool | None = None


class GetSpendableCoinsRequest(ChiaRequest):
    """get_spendable_coins."""

    wallet_id: int = Field(ge=1)
    min_coin_amount: int | None = Field(default=None, ge=0)


class GetTransactionsRequest(ChiaRequest):
    """get_transactions; `confirmed=False` lists only unconfirmed ones."""

    wallet_id: int = Field(ge=1)
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)
    sort_key: Literal["CONFIRMED_AT_HEIGHT", "RELEVANCE"] | None = None
    reverse: bool | None = None
    confirmed: bool | None = None


class GetWalletsRequest(ChiaRequest):
    """get_wallets, optionally of one type."""

    type: int | None = None


class SplitCoinsRequest(ChiaRequest):
    """split_coins: split one coin into `number_of_coins` coins of `amount_per_coin`."""

    wallet_id: int = Field(ge=1)
    target_coin_id: Hash32
    number_of_coins: int = Field(ge=1)
    amount_per_coin: int = Field(ge=1)
    fee: int = Field(ge=0)
    push: bool = True


class SendTransactionRequest(ChiaRequest):
    """send_transaction of `amount` mojos to `address`."""

    wallet_id: int = Field(ge=1)
    address: str
    amount: int = Field(ge=0)
    fee: int = Field(ge=0)
    memos: list[str] | None = None
    push: bool | None = None


# --- responses -----------------------------------------------------------------------------


class WalletSyncStatus(ChiaModel):
    """get_sync_status; only `synced` counts (`syncing` can stay true on testnets)."""

    synced: bool
    syncing: bool = False
    genesis_initialized: bool = True


class WalletBalance(ChiaModel):
    """The `wallet_balance` of get_wallet_balance, in mojos."""

    wallet_id: int
    confirmed_wallet_balance: int
    unconfirmed_wallet_balance: int
    spendable_balance: int
    max_send_amount: int = 0
    pending_change: int = 0
    pending_coin_removal_count: int = 0
    unspent_coin_count: int = 0
    fingerprint: int | None = None
    wallet_type: int | None = None
    asset_id: str | None = None


class WalletBalanceResponse(ChiaModel):
    """get_wallet_balance envelope."""

    wallet_balance: WalletBalance


class NextAddressResponse(ChiaModel):
    """get_next_address."""

    address: str
    wallet_id: int | None = None


class CoinRecord(ChiaModel):
    """One entry of get_coin_records; unspent when `spent_height` is 0 or missing."""

    id: Hash32
    amount: int
    confirmed_height: Annotated[int, BeforeValidator(_none_as_zero)] = 0
    spent_height: Annotated[int, BeforeValidator(_none_as_zero)] = 0
    coinbase: bool = False
    parent_coin_info: Hash32 | None = None
    puzzle_hash: Hash32 | None = None
    type: int | None = None
    wallet_identifier: dict[str, Any] | None = None
    metadata: Any = None

    @property
    def spent(self) -> bool:
        """The coin has been spent."""
        return self.spent_height > 0


class CoinRecordsResponse(ChiaModel):
    """get_coin_records."""

    coin_records: list[CoinRecord]
    total_count: int | None = None


class SpendableCoinRecord(ChiaModel):
    """One entry of get_spendable_coins."""

    coin: Coin
    coinbase: bool = False
    confirmed_block_index: int = 0
    spent_block_index: int = 0
    timestamp: int | None = None


class SpendableCoinsResponse(ChiaModel):
    """get_spendable_coins."""

    confirmed_records: list[SpendableCoinRecord]
    #: Real Chia returns coin records (coin, coinbase, confirmed_block_index, ...) here.
    unconfirmed_removals: list[SpendableCoinRecord] = Field(default_factory=list)
    unconfirmed_additions: list[Coin] = Field(default_factory=list)


class TransactionsResponse(ChiaModel):
    """get_transactions."""

    transactions: list[TransactionRecord]
    wallet_id: int | None = None


class WalletInfo(ChiaModel):
    """One wallet of get_wallets; the DataLayer wallet has type 11."""

    id: int
    name: str
    type: int
    data: str = ""


class WalletsResponse(ChiaModel):
    """get_wallets."""

    wallets: list[WalletInfo]
    fingerprint: int | None = None


class TransactionsResult(ChiaModel):
    """Writes that answer with the transactions they made (split_coins)."""

    transactions: list[TransactionRecord] = Field(default_factory=list)


class SendTransactionResponse(ChiaModel):
    """send_transaction."""

    transaction_id: Hash32
    transaction: TransactionRecord | None = None
    transactions: list[TransactionRecord] = Field(default_factory=list)


class NetworkInfo(ChiaModel):
    """get_network_info."""

    network_name: str
    network_prefix: str
    genesis_challenge: Hash32 | None = None


class VersionResponse(ChiaModel):
    """get_version."""

    version: str


class Connection(ChiaModel):
    """One peer of get_connections (fields vary between Chia versions, all optional)."""

    node_id: Hash32 | None = None
    peer_host: str | None = None
    peer_port: int | None = None
    peer_server_port: int | None = None
    type: int | None = None


class ConnectionsResponse(ChiaModel):
    """get_connections."""

    connections: list[Connection]


class HeightInfo(ChiaModel):
    """get_height_info."""

    height: int
    latest_timestamp: int | None = None
    is_transaction_block: bool | None = None
    prev_transaction_block_height: int | None = None


class FingerprintResponse(ChiaModel):
    """get_logged_in_fingerprint (null when no key is logged in)."""

    fingerprint: int | None = None


class DLSingleton(ChiaModel):
    """One entry of dl_owned_singletons: a DataLayer store owned by this wallet."""

    launcher_id: StoreId
    root: Hash32
    coin_id: Hash32
    confirmed: bool
    confirmed_at_height: int = 0
    generation: int = 0
    inner_puzzle_hash: Hash32 | None = None
    timestamp: int | None = None
    lineage_proof: dict[str, Any] | None = None


class DLOwnedSingletonsResponse(ChiaModel):
    """dl_owned_singletons."""

    singletons: list[DLSingleton]
    count: int | None = None
