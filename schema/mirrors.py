"""The DataLayer Mirror type (shown by Organization.mirrors and Query.mirrors)."""

from __future__ import annotations

import strawberry

from schema.scalars import Mojos
from services.views import MirrorView


@strawberry.type(
    description="An on-chain mirror coin advertising URLs where a store can be downloaded."
)
class Mirror:
    coin_id: strawberry.ID = strawberry.field(description="The mirror coin id (64 hex).")
    store_id: strawberry.ID = strawberry.field(description="The mirrored store (64 hex).")
    urls: list[str] = strawberry.field(description="Advertised download URLs.")
    amount: Mojos = strawberry.field(description="Mojos locked in the mirror coin.")
    ours: bool = strawberry.field(description="This node's wallet owns the mirror coin.")

    @classmethod
    def from_domain(cls, mirror: MirrorView) -> Mirror:
        """Build from the read model."""
        return cls(
            coin_id=strawberry.ID(mirror.coin_id),
            store_id=strawberry.ID(mirror.store_id),
            urls=list(mirror.urls),
            amount=Mojos(mirror.amount),
            ours=mirror.ours,
        )
