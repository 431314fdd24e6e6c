"""The per-request GraphQL context and the typed Info alias used by every field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from services.container import Services


@dataclass
class Context:
    """What a field resolver may use: the process's services and this request's loaders."""

    services: Services
    request: Request | WebSocket | None = None
    #: DataLoaders of this request, created lazily by resolvers.loaders.
    loaders: dict[str, Any] = field(default_factory=dict)
    #: Connection params of a WebSocket client (graphql-transport-ws connection_init payload).
    connection_params: dict[str, Any] | None = None


Info: TypeAlias = strawberry.Info[Context, None]
