"""Resolvers of the wallet status query."""

from __future__ import annotations

from graphql import GraphQLError

from resolvers.context import Info
from services.errors import UpstreamFailure
from services.wallet_status import WalletStatusView, wallet_status


def upstream_error(error: UpstreamFailure) -> GraphQLError:
    """A top-level GraphQL error for a query the upstream could not serve (queries have no
    result unions): extensions carry the ErrorCode and the Chia service."""
    return GraphQLError(
        error.message, extensions={"code": error.code.value, "service": error.service.value}
    )


async def wallet(info: Info) -> WalletStatusView:
    """The wallet's status, or a top-level UPSTREAM_UNAVAILABLE error."""
    try:
        return await wallet_status(info.context.services)
    except UpstreamFailure as error:
        raise upstream_error(error) from None
