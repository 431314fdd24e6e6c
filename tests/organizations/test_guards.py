"""The checks every organization mutation makes first: read-only, arguments, a synced wallet."""

from __future__ import annotations

from typing import Any

import pytest

from tests.organizations.conftest import (
    DELETE,
    EDIT,
    IMPORT,
    RESYNC,
    SET_METADATA,
    SUBSCRIBE,
    UNSUBSCRIBE,
    make_remote_org,
    synced_locally,
)

VALID_UID = "ab" * 32

#: (mutation field, document, variables with a well-formed id, variables with a malformed id)
MUTATIONS = [
    ("importOrganization", IMPORT, {"orgUid": VALID_UID}, {"orgUid": "xyz"}),
    ("subscribeOrganization", SUBSCRIBE, {"orgUid": VALID_UID}, {"orgUid": "xyz"}),
    ("unsubscribeOrganization", UNSUBSCRIBE, {"orgUid": VALID_UID}, {"orgUid": "xyz"}),
    ("resyncOrganization", RESYNC, {"orgUid": VALID_UID}, {"orgUid": "12"}),
    ("deleteOrganization", DELETE, {"orgUid": VALID_UID}, {"orgUid": "0x12"}),
    ("editHomeOrganization", EDIT, {"input": {"name": "New"}}, {"input": {"name": " "}}),
    (
        "setOrganizationMetadata",
        SET_METADATA,
        {"entries": [{"key": "a", "value": "b"}]},
        {"entries": [{"key": "", "value": "b"}]},
    ),
]

MALFORMED_FIELDS = {
    "editHomeOrganization": "name",
    "setOrganizationMetadata": "entries.0.key",
}

IDS = [name for name, *_ in MUTATIONS]


@pytest.mark.parametrize(("name", "document", "valid", "malformed"), MUTATIONS, ids=IDS)
async def test_a_read_only_node_refuses_every_mutation_first(
    start_node: Any,
    node_settings: Any,
    name: str,
    document: str,
    valid: dict[str, Any],
    malformed: dict[str, Any],
):
    node = await start_node(node_settings(read_only=True), run_worker=False)

    for variables in (valid, malformed):
        result = (await node.execute(document, variables))[name]
        assert result["__typename"] == "ReadOnly", result
        assert result["code"] == "READ_ONLY"


@pytest.mark.parametrize(("name", "document", "valid", "malformed"), MUTATIONS, ids=IDS)
async def test_malformed_arguments_are_validation_errors_before_any_upstream_call(
    org_node: Any,
    simulator: Any,
    name: str,
    document: str,
    valid: dict[str, Any],
    malformed: dict[str, Any],
):
    simulator.state.faults.wallet_unsynced.append(0)  # any upstream check would fail

    result = (await org_node.execute(document, malformed))[name]

    assert result["__typename"] == "ValidationError", result
    assert result["code"] == "VALIDATION"
    assert result["field"] == MALFORMED_FIELDS.get(name, "orgUid")


@pytest.mark.parametrize(
    ("name", "document", "valid"),
    [
        (name, document, valid)
        for name, document, valid, _ in MUTATIONS
        if name != "deleteOrganization"
    ],
    ids=[name for name in IDS if name != "deleteOrganization"],
)
async def test_an_unsynced_wallet_refuses_upstream_writes(
    org_node: Any, simulator: Any, name: str, document: str, valid: dict[str, Any]
):
    simulator.state.faults.wallet_unsynced.append(0)

    result = (await org_node.execute(document, valid))[name]

    assert result["__typename"] == "UpstreamError", result
    assert result["code"] == "WALLET_NOT_SYNCED"
    assert result["service"] == "WALLET"


async def test_delete_checks_the_wallet_before_deleting_a_subscribed_org(
    org_node: Any, simulator: Any
):
    remote = make_remote_org(simulator)
    await synced_locally(org_node, [remote.org_uid, remote.data_model_version_store_id])
    imported = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]
    assert imported["__typename"] == "OrganizationPayload"
    simulator.state.faults.wallet_unsynced.append(0)

    result = (await org_node.execute(DELETE, {"orgUid": remote.org_uid}))["deleteOrganization"]

    assert result["__typename"] == "UpstreamError"
    assert result["code"] == "WALLET_NOT_SYNCED"
    found = await org_node.execute(
        "query($u: ID!) { organization(orgUid: $u) { orgUid } }", {"u": remote.org_uid}
    )
    assert found["organization"] == {"orgUid": remote.org_uid}


async def test_datalayer_failures_are_upstream_errors(org_node: Any, simulator: Any):
    from services.simulator import FailRule

    remote = make_remote_org(simulator)
    simulator.state.faults.fail_next.append(
        FailRule(method="subscribe", error="Some DataLayer failure", key=0, nested=False)
    )

    result = (await org_node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]

    assert result["__typename"] == "UpstreamError", result
    assert result["code"] == "UPSTREAM_UNAVAILABLE"
    assert result["service"] == "DATALAYER"
    assert "Some DataLayer failure" in result["message"]
