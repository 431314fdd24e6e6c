"""Resolvers of organization queries."""

from __future__ import annotations

from resolvers.context import Info


async def xch_address(info: Info) -> str | None:
    """The wallet's current receive address (cached for the request)."""
    cache = info.context.loaders
    if "xch_address" not in cache:
        cache["xch_address"] = await info.context.services.wallet.get_next_address(1)
    value = cache["xch_address"]
    return None if value is None else str(value)


async def spendable_balance(info: Info) -> int | None:
    """The standard wallet's spendable balance in mojos (cached for the request)."""
    cache = info.context.loaders
    if "spendable_balance" not in cache:
        balance = await info.context.services.wallet.get_wallet_balance(wallet_id=1)
        cache["spendable_balance"] = balance.spendable_balance
    value = cache["spendable_balance"]
    return None if value is None else int(value)
