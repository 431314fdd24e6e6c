"""The wallet's status."""

from __future__ import annotations

import strawberry

import resolvers.wallet
from resolvers.context import Info
from schema.scalars import Mojos
from services.wallet_status import WalletStatusView


@strawberry.type(description="The standard wallet of this node's Chia key.")
class WalletStatus:
    synced: bool = strawberry.field(description="The wallet is synced; writes need it.")
    spendable_balance: Mojos | None = strawberry.field(description="Spendable balance.")
    spendable_coins: int | None = strawberry.field(description="Spendable coins.")
    unconfirmed_transactions: int | None = strawberry.field(
        description="Unconfirmed, not rejected transactions of the standard and DataLayer wallet."
    )

    @classmethod
    def from_domain(cls, view: WalletStatusView) -> WalletStatus:
        """Build from the wallet read."""
        return cls(
            synced=view.synced,
            spendable_balance=None
            if view.spendable_balance is None
            else Mojos(view.spendable_balance),
            spendable_coins=view.spendable_coins,
            unconfirmed_transactions=view.unconfirmed_transactions,
        )


@strawberry.type
class WalletQuery:
    @strawberry.field(
        description=(
            "The wallet's status (read live; a top-level UPSTREAM_UNAVAILABLE error when the "
            "wallet cannot be reached)."
        )
    )
    async def wallet(self, info: Info) -> WalletStatus:
        return WalletStatus.from_domain(await resolvers.wallet.wallet(info))
