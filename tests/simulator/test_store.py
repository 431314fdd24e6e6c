"""StoreData: roots, diffs and snapshots (in-process, no HTTP)."""

from __future__ import annotations

import time

import pytest

from services.simulator import SimulatorConfig, SimulatorState, call, create_owned_store
from services.simulator.errors import RpcError
from services.simulator.hexfmt import ZERO_HASH
from services.simulator.seed import build_store_history, synthetic_changelists
from services.simulator.store import StoreData


def _store_with(*changelists: list[dict[str, str]]) -> StoreData:
    data = StoreData()
    data.launch(timestamp=1, height=1)
    for number, changelist in enumerate(changelists, start=2):
        data.commit(data.plan(changelist), timestamp=number, height=number)
    return data


def test_root_depends_only_on_the_key_value_set():
    a = _store_with(
        [
            {"action": "insert", "key": "01", "value": "aa"},
            {"action": "insert", "key": "02", "value": "bb"},
        ]
    )
    b = _store_with(
        [{"action": "insert", "key": "02", "value": "bb"}],
        [{"action": "insert", "key": "01", "value": "aa"}],
    )
    assert a.generations[-1].root == b.generations[-1].root != ZERO_HASH
    emptied = _store_with(
        [{"action": "insert", "key": "01", "value": "aa"}], [{"action": "delete", "key": "01"}]
    )
    assert emptied.generations[0].root == emptied.generations[-1].root == ZERO_HASH


def test_upsert_diffs_as_delete_then_insert_and_reverse_diff_swaps():
    data = _store_with(
        [
            {"action": "insert", "key": "0x6b31", "value": "7631"},
            {"action": "insert", "key": "6b32", "value": "7632"},
        ],
        [{"action": "upsert", "key": "6b31", "value": "aa31"}, {"action": "delete", "key": "6b32"}],
    )
    assert sorted(data.diff(1, 2)) == [
        ("DELETE", "6b31", "7631"),
        ("DELETE", "6b32", "7632"),
        ("INSERT", "6b31", "aa31"),
    ]
    assert sorted(data.diff(2, 1)) == [
        ("DELETE", "6b31", "aa31"),
        ("INSERT", "6b31", "7631"),
        ("INSERT", "6b32", "7632"),
    ]
    assert sorted(data.diff(0, 2)) == [("INSERT", "6b31", "aa31")]


def test_changelist_errors_match_chia():
    data = _store_with([{"action": "insert", "key": "6b31", "value": "00"}])
    with pytest.raises(RpcError, match=r"^KeyId\(1\)$"):
        data.plan([{"action": "insert", "key": "6b31", "value": "00"}])
    for changelist in (
        [],
        [{"action": "delete", "key": "ffff"}],
        [{"action": "upsert", "key": "6b31", "value": "00"}],
    ):
        with pytest.raises(RpcError, match=r"^Changelist resulted in no change to tree data$"):
            data.plan(changelist)
    with pytest.raises(RpcError, match="non-hexadecimal number found in fromhex"):
        data.plan([{"action": "insert", "key": "zz", "value": "00"}])


def test_snapshots_of_old_generations_replay_backwards():
    changelists = list(synthetic_changelists(30, 20, seed=3))
    data = _store_with(*changelists)
    forward: dict[str, str] = {}
    for number, changelist in enumerate(changelists, start=1):
        for change in changelist:
            if change["action"] == "delete":
                forward.pop(change["key"], None)
            else:
                forward[change["key"]] = change["value"]
        if number in (5, 17, 30):
            assert data.snapshot(number) == forward


def test_diff_over_many_generations_equals_the_set_difference():
    data = _store_with(*synthetic_changelists(40, 25, seed=9))
    for low, high in ((0, 40), (3, 27), (12, 13)):
        before = set(data.snapshot(low).items())
        after = set(data.snapshot(high).items())
        diff = data.diff(low, high)
        assert {(k, v) for t, k, v in diff if t == "INSERT"} == after - before
        assert {(k, v) for t, k, v in diff if t == "DELETE"} == before - after


def test_kv_diff_of_a_thousand_changes_is_fast_in_process():
    """The bench budget is 10 ms; this only prints the measurement (no timing assertion)."""
    state = SimulatorState(SimulatorConfig(seed="none"))
    store_id = create_owned_store(state, 1, synthetic_changelists(2, 1000, seed=1))
    generations = state.stores[store_id].data.generations
    request = {"id": store_id, "hash_1": generations[1].root, "hash_2": generations[2].root}
    started = time.perf_counter()
    answer = call(state, "datalayer", 1, "get_kv_diff", request)
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"get_kv_diff of {len(answer['diff'])} records: {elapsed_ms:.2f} ms")
    assert answer["success"] is True
    assert len({(r["key"]) for r in answer["diff"]}) >= 999


def test_build_store_history_helper_gives_n_generations():
    state = SimulatorState(SimulatorConfig(seed="none"))
    store_id = build_store_history(state, owner_key=1, generations=50, changes_per_generation=10)
    history = call(state, "datalayer", 1, "get_root_history", {"id": store_id})["root_history"]
    assert len(history) == 51
    assert [entry["timestamp"] for entry in history] == sorted(
        entry["timestamp"] for entry in history
    )
    status = call(state, "datalayer", 1, "get_sync_status", {"id": store_id})["sync_status"]
    assert status["generation"] == status["target_generation"] == 50
