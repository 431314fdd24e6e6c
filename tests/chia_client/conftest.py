"""Fixtures for the Chia client tests: respx routers behind injected transports, zero waits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from services.chia import ChiaClients, DataLayerClient, WalletClient, build_chia_clients

DL_URL = "http://datalayer.test"
WALLET_URL = "http://wallet.test"

#: Retries are immediate in tests: the wait cap is the constructor's `retry_max_wait`.
RETRY_ATTEMPTS = 3

STORE_ID = "288d155a74c05a9bde95dbd1243ec3daad7d2f0dcdadf9c281b43161d520e5f5"
HASH_A = "8d3dce8764357ba9f01016b524d389fea3e3bfab5fae7baaa1fd350c3a3c52a4"
HASH_B = "abb62a07a0518431caf01178e833e6f7d7397d86df983788b6680a37a4437c38"
UNKNOWN_ID = "ab" * 32


def chia_error(message: str) -> dict[str, object]:
    """A `success: false` body exactly as Chia 2.7.5 sends it."""
    return {
        "error": message,
        "structuredError": {"code": "UNKNOWN", "data": {}, "message": message},
        "success": False,
        "traceback": "Traceback (most recent call last):\n  ...",
    }


@pytest.fixture
def router() -> respx.MockRouter:
    """A respx router that refuses unrouted requests; routes use full URLs."""
    return respx.MockRouter(assert_all_mocked=True, assert_all_called=False)


@pytest.fixture
async def clients(router: respx.MockRouter) -> AsyncIterator[ChiaClients]:
    """Both clients talking to `router`, with three attempts and no wait between them."""
    built = build_chia_clients(
        datalayer_url=DL_URL,
        wallet_url=WALLET_URL,
        ssl_folder=None,
        connect_timeout=1,
        datalayer_timeout=5,
        wallet_timeout=5,
        retry_attempts=RETRY_ATTEMPTS,
        retry_max_wait=0,
        transport=httpx.MockTransport(router.async_handler),
    )
    async with built:
        yield built


@pytest.fixture
def datalayer(clients: ChiaClients) -> DataLayerClient:
    """The DataLayer client of `clients`."""
    return clients.datalayer


@pytest.fixture
def wallet(clients: ChiaClients) -> WalletClient:
    """The Wallet client of `clients`."""
    return clients.wallet
