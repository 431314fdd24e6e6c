"""Fixtures of the mirror tests: the hand-driven chain of the sync tests, and an RPC spy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.container import Services
from tests.sync.harness import chain, clock, make_services, services

__all__ = ["chain", "clock", "make_services", "services"]


class Spy:
    """Counts (and records the arguments of) calls of chosen client methods."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def wrap(self, monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
        real: Callable[..., Awaitable[Any]] = getattr(target, name)

        async def spied(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return await real(*args, **kwargs)

        monkeypatch.setattr(target, name, spied)

    def count(self, name: str) -> int:
        """Calls of `name`."""
        return sum(1 for call in self.calls if call[0] == name)

    def of(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Arguments of every call of `name`."""
        return [(args, kwargs) for called, args, kwargs in self.calls if called == name]


@pytest.fixture
def spy_on(monkeypatch: pytest.MonkeyPatch) -> Callable[[Services], Spy]:
    """Spy on the DataLayer and wallet calls the mirror code makes."""

    def attach(services: Services) -> Spy:
        spy = Spy()
        for name in ("get_mirrors", "add_mirror", "delete_mirror", "get_value"):
            spy.wrap(monkeypatch, services.datalayer, name)
        for name in ("get_sync_status", "get_wallet_balance"):
            spy.wrap(monkeypatch, services.wallet, name)
        return spy

    return attach


@pytest.fixture(autouse=True)
def local_datalayer_wallet(chain: Any) -> None:
    """Key 0 has its DataLayer wallet (a node that mirrors has subscribed or created stores)."""
    chain.state.key(0).dl_wallet = True
