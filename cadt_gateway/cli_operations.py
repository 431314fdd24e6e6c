"""`cadt-gateway operations`: register persisted operations (the allow-list) or list them.

    cadt-gateway operations register FILE...   # .graphql documents, Apollo manifests, {id: doc}
    cadt-gateway operations list

Registered operations are stored in Redis (CADT_REDIS_URL, or the embedded redis-server of
CADT_DATA_DIR), so every gateway sharing it accepts them at once, in allowlist mode too.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadt_gateway.persisted import OperationRegistry


def add_operations_parser(subparsers: Any) -> None:
    """Register `operations register|list` on the main CLI's subparsers."""
    parser = subparsers.add_parser(
        "operations",
        help="register persisted operations (the allow-list) or list them",
        description=(
            "Register operations in the allow-list of every gateway sharing this Redis "
            "(CADT_REDIS_URL, or the embedded one of CADT_DATA_DIR)."
        ),
    )
    commands = parser.add_subparsers(dest="operations_command", required=True)
    register = commands.add_parser(
        "register", help="add .graphql documents or manifests (Apollo's, or {id: document})"
    )
    register.add_argument("files", nargs="+", type=Path)
    register.set_defaults(handler=cmd_register)
    listing = commands.add_parser("list", help="print the id and first line of each operation")
    listing.set_defaults(handler=cmd_list)


def cmd_register(args: argparse.Namespace) -> int:
    """Add the operations of the given files to the allow-list; print their ids."""
    from cadt_gateway.persisted import read_operations

    operations: dict[str, str] = {}
    for path in args.files:
        try:
            operations.update(read_operations(path))
        except (OSError, ValueError) as error:
            print(f"cadt-gateway operations: {path}: {error}")
            return 2

    async def register(registry: OperationRegistry) -> None:
        await registry.register_allowed(operations)

    _with_registry(register)
    for identifier, document in operations.items():
        print(f"{identifier}  {_first_line(document)}")
    return 0


def cmd_list(_: argparse.Namespace | None) -> int:
    """Print every allow-listed operation."""
    found: dict[str, str] = {}

    async def read(registry: OperationRegistry) -> None:
        found.update(await registry.allowlist())

    _with_registry(read)
    for identifier, document in sorted(found.items()):
        print(f"{identifier}  {_first_line(document)}")
    return 0


def _first_line(document: str) -> str:
    return " ".join(document.split())[:80]


def _with_registry(work: Callable[[OperationRegistry], Awaitable[None]]) -> None:
    from redis.asyncio import Redis

    from cadt_gateway.cli import _settings
    from cadt_gateway.embedded_redis import EmbeddedRedis
    from cadt_gateway.persisted import OperationRegistry

    settings = _settings()

    async def run() -> None:
        embedded = None
        url = settings.redis_url
        if url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            url = await embedded.astart()
        redis = Redis.from_url(url)
        try:
            await work(OperationRegistry(redis))
        finally:
            await redis.aclose()
            if embedded is not None:
                await embedded.astop()

    asyncio.run(run())
