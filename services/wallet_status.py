"""What the wallet reports: synced, spendable balance and coins, unconfirmed transactions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.chia import ChiaRpcError
from services.container import Services
from services.upstream import STANDARD_WALLET_ID, pending_transactions, upstream_failure


@dataclass(frozen=True)
class WalletStatusView:
    """The standard wallet's state (amounts in mojos)."""

    synced: bool
    spendable_balance: int | None
    spendable_coins: int | None
    unconfirmed_transactions: int | None


async def wallet_status(services: Services) -> WalletStatusView:
    """Read the wallet; UpstreamFailure (service WALLET) when it cannot be reached."""
    try:
        status, balance, coins, pending = await asyncio.gather(
            services.wallet.get_sync_status(),
            services.wallet.get_wallet_balance(STANDARD_WALLET_ID),
            services.wallet.get_spendable_coins(STANDARD_WALLET_ID),
            pending_transactions(services),
        )
    except ChiaRpcError as error:
        raise upstream_failure(error, context="the wallet status") from error
    return WalletStatusView(
        synced=status.synced,
        spendable_balance=balance.spendable_balance,
        spendable_coins=len(coins.confirmed_records),
        unconfirmed_transactions=len(pending),
    )
