"""Resolvers of the mirror query and mutations: unpack arguments, call services.mirrors."""

from __future__ import annotations

from graphql import GraphQLError

from resolvers.context import Info
from resolvers.organizations import validation_error
from services import mirrors
from services.errors import InvalidInput, UpstreamFailure
from services.guards import store_id_argument
from services.mirrors import MirrorOutcome
from services.views import MirrorView


async def store_mirrors(info: Info, store_id: str, refresh: bool) -> list[MirrorView]:
    """Mirrors of a store (from the table, or DataLayer when asked or unknown)."""
    try:
        uid = store_id_argument(store_id, field="storeId")
    except InvalidInput as error:
        raise validation_error(error) from None
    try:
        return await mirrors.list_mirrors(info.context.services, uid, refresh=refresh)
    except UpstreamFailure as error:
        raise GraphQLError(error.message, extensions={"code": error.code.value}) from None


async def add_mirror(info: Info, store_id: str, url: str) -> MirrorOutcome:
    """addMirror."""
    return await mirrors.add_mirror_request(info.context.services, store_id, url)


async def remove_mirror(info: Info, store_id: str, coin_id: str) -> MirrorOutcome:
    """removeMirror."""
    return await mirrors.remove_mirror_request(info.context.services, store_id, coin_id)
