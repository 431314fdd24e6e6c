"""Resolvers of the node's health."""

from __future__ import annotations

from resolvers.context import Info
from services.health import NodeHealth, check_health


async def health(info: Info) -> NodeHealth:
    """Probe every part of the node."""
    return await check_health(info.context.services)
