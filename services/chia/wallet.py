"""Async client of the Chia Wallet RPC (default https://localhost:9256).

Reads retry transport failures; writes (delete_unconfirmed_transactions, split_coins,
send_transaction) retry only when the request provably never left, since repeating a spend
that did arrive would pay twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import httpx

from services.chia.client import ChiaRpcClient
from services.chia.errors import Service
from services.chia.hexutil import normalize_hash
from services.chia.models.base import EmptyRequest, EmptyResponse, TransactionRecord
from services.chia.models.wallet import (
    UNSPENT,
    CoinRecordsResponse,
    Connection,
    ConnectionsResponse,
    DLOwnedSingletonsResponse,
    DLSingleton,
    FingerprintResponse,
    GetCoinRecordsRequest,
    GetNextAddressRequest,
    GetSpendableCoinsRequest,
    GetTransactionsRequest,
    GetWalletsRequest,
    HeightInfo,
    NetworkInfo,
    NextAddressResponse,
    SendTransactionRequest,
    SendTransactionResponse,
    SpendableCoinsResponse,
    SplitCoinsRequest,
    TransactionsResponse,
    TransactionsResult,
    VersionResponse,
    WalletBalance,
    WalletBalanceResponse,
    WalletIdRequest,
    WalletsResponse,
    WalletSyncStatus,
)

#: CADT's wallet timeout (cadt-domain 4.1).
DEFAULT_WALLET_TIMEOUT_SECONDS = 300.0

#: The standard XCH wallet is always wallet 1.
STANDARD_WALLET_ID = 1


class WalletClient(ChiaRpcClient):
    """Typed async client of the Wallet RPC."""

    service: ClassVar[Service] = "wallet"

    def __init__(
        self,
        url: str,
        *,
        ssl_folder: Path | str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = DEFAULT_WALLET_TIMEOUT_SECONDS,
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

    async def get_sync_status(self) -> WalletSyncStatus:
        """Whether the wallet is synced (only `synced` counts)."""
        return await self.call("get_sync_status", EmptyRequest(), WalletSyncStatus, write=False)

    async def get_wallet_balance(self, wallet_id: int = STANDARD_WALLET_ID) -> WalletBalance:
        """Balances of one wallet, in mojos."""
        request = WalletIdRequest(wallet_id=wallet_id)
        response = await self.call(
            "get_wallet_balance", request, WalletBalanceResponse, write=False
        )
        return response.wallet_balance

    async def get_next_address(
        self, wallet_id: int = STANDARD_WALLET_ID, *, new_address: bool = False
    ) -> str:
        """The wallet's current (or a new) receive address."""
        request = GetNextAddressRequest(wallet_id=wallet_id, new_address=new_address)
        response = await self.call("get_next_address", request, NextAddressResponse, write=False)
        return response.address

    async def get_coin_records(
        self,
        *,
        wallet_id: int | None = STANDARD_WALLET_ID,
        limit: int | None = None,
        offset: int | None = None,
        include_total_count: bool | None = None,
        unspent_only: bool = False,
    ) -> CoinRecordsResponse:
        """Coin records (spent and unspent, or `unspent_only`) of a wallet, or of all wallets
        with None. A wallet that spent many coins answers them all unless asked for the
        unspent ones (and a server that pages them would list the spent ones first)."""
        request = GetCoinRecordsRequest(
            wallet_id=wallet_id,
            limit=limit,
            offset=offset,
            spent_range=UNSPENT if unspent_only else None,
            include_total_count=include_total_count,
        )
        return await self.call("get_coin_records", request, CoinRecordsResponse, write=False)

    async def get_spendable_coins(
        self, wallet_id: int = STANDARD_WALLET_ID, *, min_coin_amount: int | None = None
    ) -> SpendableCoinsResponse:
        """Coins the wallet can spend now, plus unconfirmed additions and removals."""
        request = GetSpendableCoinsRequest(wallet_id=wallet_id, min_coin_amount=min_coin_amount)
        return await self.call("get_spendable_coins", request, SpendableCoinsResponse, write=False)

    async def get_transactions(
        self,
        wallet_id: int = STANDARD_WALLET_ID,
        *,
        start: int | None = None,
        end: int | None = None,
        sort_key: Literal["CONFIRMED_AT_HEIGHT", "RELEVANCE"] | None = None,
        reverse: bool | None = None,
        confirmed: bool | None = None,
    ) -> list[TransactionRecord]:
        """Transactions of a wallet; `confirmed=False` lists only the unconfirmed ones."""
        request = GetTransactionsRequest(
            wallet_id=wallet_id,
            start=start,
            end=end,
            sort_key=sort_key,
            reverse=reverse,
            confirmed=confirmed,
        )
        response = await self.call("get_transactions", request, TransactionsResponse, write=False)
        return response.transactions

    async def get_wallets(self, *, wallet_type: int | None = None) -> WalletsResponse:
        """The key's wallets (the DataLayer wallet has type 11)."""
        request = GetWalletsRequest(type=wallet_type)
        return await self.call("get_wallets", request, WalletsResponse, write=False)

    async def get_network_info(self) -> NetworkInfo:
        """Network name and address prefix."""
        return await self.call("get_network_info", EmptyRequest(), NetworkInfo, write=False)

    async def get_version(self) -> str:
        """The Chia version of the wallet service."""
        response = await self.call("get_version", EmptyRequest(), VersionResponse, write=False)
        return response.version

    async def get_connections(self) -> list[Connection]:
        """The wallet's peer connections."""
        response = await self.call(
            "get_connections", EmptyRequest(), ConnectionsResponse, write=False
        )
        return response.connections

    async def get_height_info(self) -> HeightInfo:
        """The wallet's view of the chain height."""
        return await self.call("get_height_info", EmptyRequest(), HeightInfo, write=False)

    async def get_logged_in_fingerprint(self) -> int | None:
        """Fingerprint of the logged-in key, None when none is."""
        response = await self.call(
            "get_logged_in_fingerprint", EmptyRequest(), FingerprintResponse, write=False
        )
        return response.fingerprint

    async def dl_owned_singletons(self) -> list[DLSingleton]:
        """DataLayer singletons (stores) this wallet owns, as the wallet sees them."""
        response = await self.call(
            "dl_owned_singletons", EmptyRequest(), DLOwnedSingletonsResponse, write=False
        )
        return response.singletons

    # --- writes ----------------------------------------------------------------------------

    async def delete_unconfirmed_transactions(self, wallet_id: int) -> None:
        """Delete every unconfirmed transaction of a wallet (it is wallet-wide)."""
        request = WalletIdRequest(wallet_id=wallet_id)
        await self.call("delete_unconfirmed_transactions", request, EmptyResponse, write=True)

    async def split_coins(
        self,
        *,
        target_coin_id: str,
        number_of_coins: int,
        amount_per_coin: int,
        fee: int,
        wallet_id: int = STANDARD_WALLET_ID,
        push: bool = True,
    ) -> TransactionsResult:
        """Split one coin into `number_of_coins` coins of `amount_per_coin` mojos."""
        request = SplitCoinsRequest(
            wallet_id=wallet_id,
            target_coin_id=normalize_hash(target_coin_id),
            number_of_coins=number_of_coins,
            amount_per_coin=amount_per_coin,
            fee=fee,
            push=push,
        )
        return await self.call("split_coins", request, TransactionsResult, write=True)

    async def send_transaction(
        self,
        *,
        address: str,
        amount: int,
        fee: int,
        wallet_id: int = STANDARD_WALLET_ID,
        memos: Sequence[str] | None = None,
        push: bool | None = None,
    ) -> SendTransactionResponse:
        """Send `amount` mojos to `address`."""
        request = SendTransactionRequest(
            wallet_id=wallet_id,
            address=address,
            amount=amount,
            fee=fee,
            memos=None if memos is None else list(memos),
            push=push,
        )
        return await self.call("send_transaction", request, SendTransactionResponse, write=True)
