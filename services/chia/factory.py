"""Builds the DataLayer and Wallet clients from plain values (settings come from the caller)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

import httpx

from services.chia.datalayer import DataLayerClient
from services.chia.wallet import WalletClient


class ChiaClients(NamedTuple):
    """The two long-lived RPC clients of a process; unpacks as `(datalayer, wallet)`."""

    datalayer: DataLayerClient
    wallet: WalletClient

    async def aclose(self) -> None:
        """Close both clients (the wallet even if closing DataLayer fails)."""
        try:
            await self.datalayer.aclose()
        finally:
            await self.wallet.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def build_chia_clients(
    *,
    datalayer_url: str,
    wallet_url: str,
    ssl_folder: Path | str | None,
    connect_timeout: float,
    datalayer_timeout: float,
    wallet_timeout: float,
    retry_attempts: int,
    retry_max_wait: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ChiaClients:
    """Both clients; https URLs use the client certificates under `ssl_folder`."""
    datalayer = DataLayerClient(
        datalayer_url,
        ssl_folder=ssl_folder,
        connect_timeout=connect_timeout,
        read_timeout=datalayer_timeout,
        retry_attempts=retry_attempts,
        retry_max_wait=retry_max_wait,
        transport=transport,
    )
    # An unused httpx client holds no connections, so a wallet certificate error raised here
    # leaks nothing from the DataLayer client built just before.
    wallet = WalletClient(
        wallet_url,
        ssl_folder=ssl_folder,
        connect_timeout=connect_timeout,
        read_timeout=wallet_timeout,
        retry_attempts=retry_attempts,
        retry_max_wait=retry_max_wait,
        transport=transport,
    )
    return ChiaClients(datalayer=datalayer, wallet=wallet)
