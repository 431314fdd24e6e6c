"""Replay the recorded owner/subscriber session (two-node-sync.json) against the simulator.

Owner calls go to key 1, subscriber calls to key 0, with the recorded requests (the same
changelists, so the same keys and values). Store ids and root hashes are translated from the
recording to the simulator's by store and generation. Every response must have the recorded
shape (keys, nesting, hex style), the same success flag and error text, and the same state:
the same sync generations, local roots, key/value sets and diffs.

Time is replaced by explicit steps: a block is farmed when the recording shows a write
confirmed, a manage-data cycle runs when the recording shows the subscriber moving (or
polling again while it should stay put), and the mirror faults stand in for the recorded 404
race and the stopped file server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.simulator import EmbeddedSimulator
from tests.simulator.conftest import Admin, Node

#: A copy of shared/fixtures/chia-rpc/two-node-sync.json, so CI clones have it too.
FIXTURE = Path(__file__).parent / "data" / "two-node-sync.json"
ZERO = "0" * 64
URL = "http://127.0.0.1:8575"
_HEX32 = re.compile(r"(0x)?([0-9a-f]{64})")
_NESTED = re.compile(r'^RPC response failure: \{"error": "(.*?)", "structuredError"')

RECORDS = FIXTURE.read_text() if FIXTURE.is_file() else "[]"

pytestmark = [
    pytest.mark.skipif(not FIXTURE.is_file(), reason="recorded fixture not available"),
    pytest.mark.sim(manage_data_blocks=10_000, keys=2),
]


def shape(value: Any) -> Any:
    """Keys, nesting and value kinds (0x hex, bare hex, text, int, ...) of a JSON value."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, str):
        if re.fullmatch(r"0x[0-9a-f]*", value):
            return "0xhex"
        if re.fullmatch(r"(?:[0-9a-f]{2})+", value):
            return "hex"
        return "text"
    return type(value).__name__


def same_shape(recorded: Any, ours: Any, where: str) -> None:
    """Assert equal shapes; an empty list on either side matches any list."""
    if isinstance(recorded, dict):
        assert isinstance(ours, dict) and set(ours) == set(recorded), (
            f"{where}: {sorted(ours)} != {sorted(recorded)}"
        )
        for key in recorded:
            if key != "traceback":
                same_shape(recorded[key], ours[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(ours, list), where
        if recorded and ours:
            same_shape(recorded[0], ours[0], f"{where}[0]")
    else:
        assert shape(recorded) == shape(ours), f"{where}: {recorded!r} vs {ours!r}"


class Replay:
    """Translation tables and the simulator-side moves of the replay."""

    def __init__(self, records: list[dict[str, Any]], sim: EmbeddedSimulator, admin: Admin) -> None:
        self.sim = sim
        self.admin = admin
        self.ids: dict[str, str] = {}
        self.generation_of: dict[str, tuple[str, int]] = {}
        for record in records:
            history = (
                record["response"].get("root_history")
                if isinstance(record["response"], dict)
                else None
            )
            if record["method"] == "get_root_history" and history:
                store = record["request"]["id"]
                for index, entry in enumerate(history):
                    if entry["root_hash"][2:] != ZERO:
                        self.generation_of[entry["root_hash"][2:]] = (store, index)

    def our_root(self, recorded_hash: str) -> str | None:
        store, generation = self.generation_of[recorded_hash]
        data = self.sim.state.stores[self.ids[store]].data
        return data.generations[generation].root if generation <= data.latest else None

    def needed_generation(self, value: Any) -> int:
        text = json.dumps(value)
        wanted = [
            self.generation_of[h][1] for _p, h in _HEX32.findall(text) if h in self.generation_of
        ]
        return max(wanted, default=-1)

    def translate(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self.translate(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.translate(item) for item in value]
        if isinstance(value, str):
            return _HEX32.sub(self._swap, value)
        return value

    def _swap(self, match: re.Match[str]) -> str:
        prefix, bare = match.group(1) or "", match.group(2)
        if bare in self.ids:
            return prefix + self.ids[bare]
        if bare in self.generation_of:
            ours = self.our_root(bare)
            assert ours is not None, f"root {bare} is not confirmed in the simulator yet"
            return prefix + ours
        return match.group(0)

    async def farm_if_pending(self) -> None:
        if self.sim.state.mempool:
            await self.admin.farm()


def _inner_error(message: str) -> str:
    found = _NESTED.match(message)
    return found.group(1) if found else message


async def test_replay_two_node_session(
    sim: EmbeddedSimulator, node0: Node, node1: Node, manual: Admin
):
    records: list[dict[str, Any]] = json.loads(RECORDS)
    replay = Replay(records, sim, manual)
    store_a = "288d155a74c05a9bde95dbd1243ec3daad7d2f0dcdadf9c281b43161d520e5f5"
    reset_pending = False
    seen_steps: set[str] = set()

    for number, record in enumerate(records):
        step, service, method = record["step"], record["service"], record["method"]
        where = f"#{number} {step} {service} {method}"
        recorded = record["response"]
        node = node1 if service.startswith("owner") else node0
        first_of_step = step not in seen_steps
        seen_steps.add(step)

        # ------------------------------------------------------------ faults standing in for time
        if service == "owner-dl" and method == "batch_update":
            if step == "4 owner write A gen 8":
                # The subscriber's cycle had fetched gen 7 before gen 8 came; then it missed gen 8.
                await manual.cycle(0)
                await manual.faults(
                    miss_downloads=[{"store_id": replay.ids[store_a], "count": 1, "key": 0}]
                )
            if "(file server down)" in step:
                await manual.faults(mirrors_down=[URL])
        if first_of_step and ("file server back up" in step or step == "9 sub reset backoff"):
            await manual.set_faults({})

        # ------------------------------------------------------------ blocks the recording implies
        if step.endswith("(confirmed)"):
            await replay.farm_if_pending()
        needed = replay.needed_generation([record["request"], recorded])
        if needed >= 0 and replay.ids:
            data = sim.state.stores[replay.ids[store_a]].data
            if data.latest < needed:
                await replay.farm_if_pending()

        request = replay.translate(record["request"])
        if service.endswith("wallet"):
            ours = await node.wallet(method, request)
            same_shape(recorded, ours, where)
            continue

        # ------------------------------------------------------------ cycles the recording implies
        if service == "sub-dl" and method == "get_sync_status":
            current = await node.dl(method, request)
            if recorded["success"]:
                want = recorded["sync_status"]
                behind = (
                    not current["success"]
                    or current["sync_status"]["generation"] < want["generation"]
                )
                should_stay = (
                    want["generation"] < want["target_generation"]
                    and not reset_pending
                    and (record.get("changed") is False or "stuck" in step)
                )
                if behind or should_stay:
                    await manual.cycle(0)
                if behind:
                    reset_pending = False
            elif current["success"]:
                await manual.cycle(0)  # a queued unsubscribe is applied at the next cycle

        ours = await node.dl(method, request)
        same_shape(recorded, ours, where)
        assert ours["success"] == recorded["success"], f"{where}: {ours}"
        if not recorded["success"]:
            expected = replay.translate(recorded["error"])
            assert _inner_error(ours["error"]) == _inner_error(expected), where
            assert ours["error"].startswith("RPC response failure: ") == expected.startswith(
                "RPC response failure: "
            )
            continue

        # ---------------------------------------------------------- the same state, not only shapes
        if method == "create_data_store":
            replay.ids[recorded["id"]] = ours["id"]
        elif method in ("remove_subscriptions",):
            reset_pending = True
        elif method == "get_sync_status":
            assert ours == replay.translate(recorded), where
        elif method == "get_local_root":
            assert ours["hash"] == replay.translate(recorded["hash"]), where
        elif method == "get_root":
            lagging = service == "sub-dl" and recorded["hash"][2:] == ZERO
            if not lagging:  # the recorded subscriber briefly reported the launch root (wallet lag)
                assert ours["hash"] == replay.translate(recorded["hash"]), where
        elif method == "get_root_history":
            expected = [entry["root_hash"] for entry in replay.translate(recorded["root_history"])]
            got = [entry["root_hash"] for entry in ours["root_history"]]
            assert got[: len(expected)] == expected, where
        elif method == "get_keys_values":
            pairs = {(p["key"], p["value"]) for p in recorded["keys_values"]}
            assert {(p["key"], p["value"]) for p in ours["keys_values"]} == pairs, where
        elif method == "get_kv_diff":
            rows = {(d["type"], d["key"], d["value"]) for d in recorded["diff"]}
            assert {(d["type"], d["key"], d["value"]) for d in ours["diff"]} == rows, where
        elif method == "get_value":
            assert ours["value"] == recorded["value"], where
        elif method in ("subscriptions", "get_owned_stores"):
            assert sorted(ours["store_ids"]) == sorted(replay.translate(recorded["store_ids"])), (
                where
            )
        elif method == "get_mirrors":

            def summary(mirrors: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
                return [(m["amount"], m["urls"], m["ours"], m["launcher_id"]) for m in mirrors]

            assert summary(ours["mirrors"]) == summary(replay.translate(recorded["mirrors"])), where

    # The recording ends unsubscribed, with store A at generation 10 on the owner.
    assert sim.state.stores[replay.ids[store_a]].data.latest == 10
    assert (await node0.ok("subscriptions"))["store_ids"] == []
