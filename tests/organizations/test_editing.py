"""editHomeOrganization and setOrganizationMetadata: the org store and the row both change."""

from __future__ import annotations

import json
from typing import Any

from services.chia import hex_to_text
from services.organizations.records import load_row
from tests.organizations.conftest import (
    EDIT,
    IMPORT,
    SET_METADATA,
    RemoteOrg,
    eventually,
    make_remote_org,
)


async def _home(node: Any, simulator: Any) -> RemoteOrg:
    own = make_remote_org(simulator, "Our Registry", owner_key=0, metadata={"country": "Peru"})
    result = (await node.execute(IMPORT, {"orgUid": own.org_uid, "isHome": True}))[
        "importOrganization"
    ]
    assert result["__typename"] == "OrganizationPayload", result
    return own


async def _store_data(node: Any, store_id: str) -> dict[str, str]:
    response = await node.services.datalayer.get_keys_values(store_id)
    return {hex_to_text(kv.key): hex_to_text(kv.value) for kv in response.keys_values}


async def test_edit_home_organization_changes_the_store_and_the_row(org_node: Any, simulator: Any):
    own = await _home(org_node, simulator)

    result = (
        await org_node.execute(EDIT, {"input": {"name": "  Renamed Registry ", "icon": "x.svg"}})
    )["editHomeOrganization"]

    assert result["__typename"] == "OrganizationPayload", result
    assert result["message"] == "Home org currently being updated, will be completed soon."
    assert result["organization"]["name"] == "Renamed Registry"
    assert result["organization"]["icon"] == "x.svg"
    data = await eventually(
        lambda: _store_data(org_node, own.org_uid),
        lambda data: data.get("name") == "Renamed Registry",
    )
    assert data["icon"] == "x.svg"
    assert data["registryId"] == own.data_model_version_store_id  # untouched keys stay
    home = await org_node.execute("{ homeOrganization { name icon } }")
    assert home["homeOrganization"] == {"name": "Renamed Registry", "icon": "x.svg"}


async def test_set_metadata_merges_into_the_store_and_organization_metadata(
    org_node: Any, simulator: Any
):
    own = await _home(org_node, simulator)

    result = (
        await org_node.execute(
            SET_METADATA,
            {
                "entries": [
                    {"key": "website", "value": "https://ours.test"},
                    {"key": "country", "value": "Chile"},
                ]
            },
        )
    )["setOrganizationMetadata"]

    assert result["__typename"] == "OrganizationPayload", result
    assert result["organization"]["metadata"] == {
        "country": "Chile",
        "website": "https://ours.test",
    }
    data = await eventually(
        lambda: _store_data(org_node, own.org_uid),
        lambda data: data.get("meta_country") == "Chile",
    )
    assert data["meta_website"] == "https://ours.test"
    assert data["name"] == "Our Registry"
    row = await load_row(org_node.services.db, own.org_uid, "v2")
    assert row is not None
    assert json.loads(row.metadata_json) == {
        "meta_country": "Chile",
        "meta_website": "https://ours.test",
    }


async def test_consecutive_edits_wait_for_the_previous_root(org_node: Any, simulator: Any):
    own = await _home(org_node, simulator)

    first = (await org_node.execute(EDIT, {"input": {"name": "First"}}))["editHomeOrganization"]
    second = (await org_node.execute(EDIT, {"input": {"name": "Second"}}))["editHomeOrganization"]
    metadata = (await org_node.execute(SET_METADATA, {"entries": [{"key": "k", "value": "v"}]}))[
        "setOrganizationMetadata"
    ]

    assert [first["__typename"], second["__typename"], metadata["__typename"]] == [
        "OrganizationPayload"
    ] * 3, (first, second, metadata)
    data = await eventually(
        lambda: _store_data(org_node, own.org_uid),
        lambda data: data.get("name") == "Second" and data.get("meta_k") == "v",
    )
    assert data["meta_country"] == "Peru"


async def test_unchanged_values_push_nothing(org_node: Any, simulator: Any):
    own = await _home(org_node, simulator)
    history = await org_node.services.datalayer.get_root_history(own.org_uid)

    result = (await org_node.execute(EDIT, {"input": {"name": "Our Registry"}}))[
        "editHomeOrganization"
    ]

    assert result["__typename"] == "OrganizationPayload"
    assert "nothing to change" in result["message"]
    assert await org_node.services.datalayer.get_root_history(own.org_uid) == history


async def test_edit_without_a_home_organization_is_refused(org_node: Any):
    result = (await org_node.execute(EDIT, {"input": {"name": "X"}}))["editHomeOrganization"]

    assert result["__typename"] == "PreconditionFailed"
    assert result["message"] == "There is no home organization on this node"


async def test_metadata_list_is_capped(org_node: Any):
    entries = [{"key": f"k{number}", "value": "v"} for number in range(101)]

    result = (await org_node.execute(SET_METADATA, {"entries": entries}))["setOrganizationMetadata"]

    assert result["__typename"] == "ValidationError"
    assert result["field"] == "entries"
    assert "at most 100" in result["message"]


async def test_duplicate_metadata_keys_are_refused(org_node: Any):
    entries = [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]

    result = (await org_node.execute(SET_METADATA, {"entries": entries}))["setOrganizationMetadata"]

    assert result["__typename"] == "ValidationError"
    assert result["field"] == "entries.1.key"


async def test_edit_needs_a_name_or_an_icon(org_node: Any):
    result = (await org_node.execute(EDIT, {"input": {}}))["editHomeOrganization"]

    assert result["__typename"] == "ValidationError"
    assert result["field"] == "input"


async def test_edit_of_a_store_this_wallet_does_not_own_is_an_upstream_error(
    org_node: Any, simulator: Any
):
    # A home row whose org store belongs to another key (e.g. restored from a backup).
    remote = make_remote_org(simulator)
    from services.db.models import Organization

    async with org_node.services.db.transaction() as session:
        session.add(Organization(org_uid=remote.org_uid, name="Not ours", is_home=True))
    await org_node.services.datalayer.subscribe(remote.org_uid)
    await eventually(lambda: _readable(org_node, remote.org_uid), bool)

    result = (await org_node.execute(EDIT, {"input": {"name": "X"}}))["editHomeOrganization"]

    assert result["__typename"] in ("UpstreamError", "PreconditionFailed"), result
    assert "not owned" in result["message"]


async def _readable(node: Any, store_id: str) -> bool:
    try:
        await node.services.datalayer.get_keys_values(store_id)
    except Exception:
        return False
    return True


async def test_edits_are_refused_while_datalayer_has_lost_the_home_data(
    org_node: Any, simulator: Any
):
    # given DataLayer lost the home organization's org store (a wiped DataLayer database)
    own = await _home(org_node, simulator)
    simulator.state.faults.lost_data.append(own.org_uid)

    # when the home organization is edited, then nothing is written: DataLayer would drop it
    result = (await org_node.execute(EDIT, {"input": {"name": "Lost"}}))["editHomeOrganization"]
    assert result["__typename"] == "PreconditionFailed", result
    assert "lost its local data" in result["message"]
    metadata = (await org_node.execute(SET_METADATA, {"entries": [{"key": "a", "value": "b"}]}))[
        "setOrganizationMetadata"
    ]
    assert metadata["__typename"] == "PreconditionFailed", metadata
    home = await org_node.execute("{ homeOrganization { name metadata } }")
    assert home["homeOrganization"]["name"] == "Our Registry"
    assert "a" not in home["homeOrganization"]["metadata"]

    # once the data is back, edits go through again
    simulator.state.faults.lost_data.clear()
    result = (await org_node.execute(EDIT, {"input": {"name": "Found"}}))["editHomeOrganization"]
    assert result["__typename"] == "OrganizationPayload", result
