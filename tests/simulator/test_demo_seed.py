"""The demo seed: a governance body and three organizations owned by key 1, with history."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from services.simulator import (
    DEMO_GOVERNANCE_BODY_ID,
    DEMO_GOVERNANCE_VERSION_STORE_ID,
    DEMO_MIRROR_URL,
    DEMO_ORG_UIDS,
    DEMO_ORGANIZATIONS,
    EmbeddedSimulator,
    SimulatorConfig,
    SimulatorState,
    call,
)
from tests.simulator.conftest import Admin, Node, wait_until


def _text(hex_value: str) -> str:
    return bytes.fromhex(hex_value.removeprefix("0x")).decode("utf-8")


def _store(state: SimulatorState, store_id: str, key: int = 1) -> dict[str, str]:
    answer = call(state, "datalayer", key, "get_keys_values", {"id": store_id})
    assert answer["success"] is True, answer
    return {_text(p["key"]): _text(p["value"]) for p in answer["keys_values"]}


@pytest.fixture(scope="module")
def demo() -> SimulatorState:
    return SimulatorState.create(SimulatorConfig(seed="demo", keys=3))


def test_governance_body_points_to_its_v2_store_with_lists(demo: SimulatorState):
    assert _store(demo, DEMO_GOVERNANCE_BODY_ID) == {"v2": DEMO_GOVERNANCE_VERSION_STORE_ID}
    version = _store(demo, DEMO_GOVERNANCE_VERSION_STORE_ID)
    assert set(version) == {"orgList", "pickList", "glossary"}
    assert json.loads(version["orgList"]) == [{"orgUid": uid} for uid in DEMO_ORG_UIDS]
    pick_list = json.loads(version["pickList"])
    for name in (
        "registries",
        "projectSector",
        "unitType",
        "unitStatus",
        "countries",
        "coBenefits",
    ):
        assert pick_list[name] and all(isinstance(value, str) for value in pick_list[name])
    glossary = json.loads(version["glossary"])
    assert glossary and all(isinstance(v, str) for v in glossary.values())


def test_every_organization_has_its_four_stores(demo: SimulatorState):
    assert len(DEMO_ORGANIZATIONS) >= 3
    owned = set(call(demo, "datalayer", 1, "get_owned_stores", {})["store_ids"])
    for org in DEMO_ORGANIZATIONS:
        org_store = _store(demo, org.org_uid)
        assert org_store["registryId"] == org.data_model_version_store_id
        assert org_store["fileStoreId"] == org.file_store_id
        assert org_store["name"] == org.name and org_store["icon"]
        assert any(key.startswith("meta_") for key in org_store)
        assert _store(demo, org.data_model_version_store_id) == {"v2": org.registry_store_id}
        assert _store(demo, org.file_store_id) == {}
        assert {
            org.org_uid,
            org.data_model_version_store_id,
            org.registry_store_id,
            org.file_store_id,
        } <= owned
        mirrors = call(demo, "datalayer", 1, "get_mirrors", {"id": org.org_uid})["mirrors"]
        assert [m["urls"] for m in mirrors] == [[DEMO_MIRROR_URL]]


def test_registries_have_twenty_generations_of_cadt_records(demo: SimulatorState):
    for org in DEMO_ORGANIZATIONS:
        history = call(demo, "datalayer", 1, "get_root_history", {"id": org.registry_store_id})[
            "root_history"
        ]
        assert len(history) >= 21
        assert [h["timestamp"] for h in history] == sorted(h["timestamp"] for h in history)
        kinds: set[str] = set()
        tables: set[str] = set()
        for older, newer in itertools.pairwise(history):
            diff = call(
                demo,
                "datalayer",
                1,
                "get_kv_diff",
                {
                    "id": org.registry_store_id,
                    "hash_1": older["root_hash"],
                    "hash_2": newer["root_hash"],
                },
            )["diff"]
            keys = {_text(d["key"]) for d in diff if d["type"] == "INSERT"}
            assert {"comment", "author"} <= keys
            comment = next(
                _text(d["value"])
                for d in diff
                if _text(d["key"]) == "comment" and d["type"] == "INSERT"
            )
            assert set(json.loads(comment)) == {"comment"}
            by_key: dict[str, set[str]] = {}
            for d in diff:
                by_key.setdefault(_text(d["key"]), set()).add(d["type"])
            for key, types in by_key.items():
                if "|" in key:
                    tables.add(key.split("|")[0])
                    kinds.add("update" if types == {"INSERT", "DELETE"} else types.pop().lower())
        assert {"insert", "update", "delete"} <= kinds
        assert {"project", "unit", "issuance", "label"} <= tables
        records = _store(demo, org.registry_store_id)
        project = next(json.loads(v) for k, v in records.items() if k.startswith("project|"))
        assert project["orgUid"] == org.org_uid
        assert {"warehouseProjectId", "projectName", "projectStatus"} <= set(project)
        unit = next(json.loads(v) for k, v in records.items() if k.startswith("unit|"))
        assert isinstance(unit["unitCount"], int)


def test_the_local_key_owns_nothing_and_has_no_datalayer_wallet(demo: SimulatorState):
    owned = call(demo, "datalayer", 0, "get_owned_stores", {})
    assert "DataLayerWallet not available" in owned["error"]
    balance = call(demo, "wallet", 0, "get_wallet_balance", {"wallet_id": 1})["wallet_balance"]
    assert balance["unspent_coin_count"] == 20


async def test_a_gateway_node_can_subscribe_to_the_demo_network(tmp_path: Any):
    async with EmbeddedSimulator(
        tmp_path / "demo", block_seconds=0.05, seed="demo", keys=3, faults={}
    ) as sim:
        node = Node(sim, 0)
        admin = Admin(sim)
        await node.ok("subscribe", {"id": DEMO_GOVERNANCE_BODY_ID})  # no urls: the demo mirror

        async def synced() -> bool:
            status = await node.dl("get_sync_status", {"id": DEMO_GOVERNANCE_BODY_ID})
            return bool(status["success"])

        await wait_until(synced)
        pairs = (await node.ok("get_keys_values", {"id": DEMO_GOVERNANCE_BODY_ID}))["keys_values"]
        assert [(_text(p["key"]), _text(p["value"])) for p in pairs] == [
            ("v2", DEMO_GOVERNANCE_VERSION_STORE_ID)
        ]
        await node.aclose()
        await admin.http.aclose()
