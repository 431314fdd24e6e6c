"""The contract suite: one set of tests, run against the simulator and against real Chia.

Every test takes `target` and runs twice: `[simulator]` always (part of `make test`) and
`[chia]`, marked `chia`, only under `make test-chia` (tools/chia-sim/run-tests starts the real
owner and subscriber stacks and exports their addresses). See targets.py for the adapter.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from services.chia import ChiaBusinessError, ChiaErrorKind
from services.chia.models import KeysValuesResponse, KvDiffEntry
from tests.contract.targets import ChiaTarget, SimulatorTarget, Target

#: A well-formed store id that no chain has ("ab" * 32, as in chia-rpc.md).
UNKNOWN_ID = "ab" * 32

#: What `tools/chia-sim/up` exports: with all of them set, a real stack is there to test.
CHIA_SIM_ENV = ("CHIA_SIMROOT", "CADT_CHIA_ROOT", "CHIA_FULL_NODE_RPC_URL")


def pytest_configure(config: pytest.Config) -> None:
    """Under tools/chia-sim (run-tests, or a shell that eval'd `up`), run the `chia` tests too."""
    if all(os.environ.get(name) for name in CHIA_SIM_ENV):
        os.environ.setdefault("CADT_CHIA_TESTS", "1")


@pytest.fixture(params=["simulator", pytest.param("chia", marks=pytest.mark.chia)])
async def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Target]:
    """The target under test, fresh chain on the simulator, the running stack on real Chia."""
    chosen: Target
    if request.param == "simulator":
        from services.simulator import EmbeddedSimulator

        async with EmbeddedSimulator(
            data_dir=tmp_path_factory.mktemp("contract-sim"),
            block_seconds=0.05,
            seed="none",
            keys=2,
            # Cycles only when the adapter ticks: nothing moves between two calls of a test.
            manage_data_blocks=1_000_000,
        ) as sim:
            chosen = SimulatorTarget(sim)
            try:
                await chosen.start()
                yield chosen
            finally:
                await chosen.aclose()
        return
    chosen = ChiaTarget()
    try:
        await chosen.start()
        yield chosen
    finally:
        await chosen.aclose()


@pytest.fixture
async def store(target: Target) -> str:
    """A confirmed, empty store of the owner (so the owner also has its DataLayer wallet)."""
    return await target.create_store()


# ---------------------------------------------------------------------------------- helpers
def pairs(response: KeysValuesResponse) -> list[tuple[str, str]]:
    """Key/value pairs sorted by key: Chia's order is tree order and not stable between calls."""
    return sorted((entry.key, entry.value) for entry in response.keys_values)


def rows(diff: Iterable[KvDiffEntry]) -> list[tuple[str, str, str]]:
    """kv diff entries as sorted (type, key, value) rows (nodes return them in any order)."""
    return sorted((entry.type.value, entry.key, entry.value) for entry in diff)


def hx(text: str) -> str:
    """UTF-8 text as bare hex."""
    return text.encode().hex()


async def business_error(call: Any) -> ChiaBusinessError:
    """Await `call` (a coroutine) and return the ChiaBusinessError it must raise."""
    with pytest.raises(ChiaBusinessError) as caught:
        await call
    return caught.value


def assert_envelope(error: ChiaBusinessError, message: str, kind: ChiaErrorKind | None) -> None:
    """Chia's error envelope: the exact innermost message, code UNKNOWN, a traceback, the kind."""
    assert error.message == message, error.raw_error
    assert error.code == "UNKNOWN"
    assert error.structured_error is not None
    assert error.structured_error["code"] == "UNKNOWN"
    assert error.traceback_text
    assert error.kind == kind
