"""subscribeOrganization and unsubscribeOrganization over GraphQL against the simulator."""

from __future__ import annotations

from typing import Any

from tests.organizations.conftest import (
    IMPORT,
    ORGANIZATION,
    SUBSCRIBE,
    UNSUBSCRIBE,
    RemoteOrg,
    eventually,
    make_remote_org,
    synced_locally,
)


async def _imported(node: Any, simulator: Any, **kwargs: Any) -> RemoteOrg:
    remote = make_remote_org(simulator, **kwargs)
    await synced_locally(node, [remote.org_uid, remote.data_model_version_store_id])
    result = (await node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]
    assert result["__typename"] == "OrganizationPayload", result
    return remote


async def _subscriptions(node: Any) -> set[str]:
    return set(await node.services.datalayer.subscriptions())


async def test_unsubscribe_then_subscribe_again(org_node: Any, simulator: Any):
    remote = await _imported(org_node, simulator)

    result = (await org_node.execute(UNSUBSCRIBE, {"orgUid": remote.org_uid}))[
        "unsubscribeOrganization"
    ]

    assert result["__typename"] == "OrganizationPayload", result
    assert result["message"] == "Unsubscribed from organization datalayer stores"
    assert result["organization"]["subscribed"] is False
    gone = {remote.org_uid, remote.data_model_version_store_id, remote.registry_store_id}
    # DataLayer applies an unsubscribe at its next cycle.
    await eventually(lambda: _subscriptions(org_node), lambda ids: not (ids & gone))

    again = (await org_node.execute(UNSUBSCRIBE, {"orgUid": remote.org_uid}))[
        "unsubscribeOrganization"
    ]
    assert again["__typename"] == "OrganizationPayload"
    assert again["message"] == f"you are not subscribed to organization {remote.org_uid}"

    subscribed = (await org_node.execute(SUBSCRIBE, {"orgUid": remote.org_uid}))[
        "subscribeOrganization"
    ]
    assert subscribed["__typename"] == "OrganizationPayload", subscribed
    assert subscribed["message"] == "Subscribed to organization"
    assert subscribed["organization"]["subscribed"] is True
    assert gone <= await _subscriptions(org_node)


async def test_subscribe_when_already_subscribed_says_so(org_node: Any, simulator: Any):
    remote = await _imported(org_node, simulator)

    result = (await org_node.execute(SUBSCRIBE, {"orgUid": remote.org_uid}))[
        "subscribeOrganization"
    ]

    assert result["__typename"] == "OrganizationPayload"
    assert result["message"] == f"You are already subscribed to organization {remote.org_uid}"


async def test_subscribe_repairs_a_missing_store_subscription(org_node: Any, simulator: Any):
    remote = await _imported(org_node, simulator)
    await org_node.services.datalayer.unsubscribe(remote.registry_store_id)
    await eventually(
        lambda: _subscriptions(org_node), lambda ids: remote.registry_store_id not in ids
    )

    result = (await org_node.execute(SUBSCRIBE, {"orgUid": remote.org_uid}))[
        "subscribeOrganization"
    ]

    assert result["message"] == "Subscribed to organization"
    assert remote.registry_store_id in await _subscriptions(org_node)


async def test_subscribe_an_unknown_org_is_not_found(org_node: Any):
    result = (await org_node.execute(SUBSCRIBE, {"orgUid": "ab" * 32}))["subscribeOrganization"]

    assert result["__typename"] == "NotFound"
    assert result["code"] == "NOT_FOUND"
    assert "importOrganization" in result["message"]


async def test_unsubscribe_an_unknown_org_is_not_found(org_node: Any):
    result = (await org_node.execute(UNSUBSCRIBE, {"orgUid": "ab" * 32}))["unsubscribeOrganization"]

    assert result["__typename"] == "NotFound"


async def test_unsubscribe_without_a_row_unsubscribes_the_stores(org_node: Any, simulator: Any):
    remote = make_remote_org(simulator)
    stores = [remote.org_uid, remote.data_model_version_store_id, remote.registry_store_id]
    await synced_locally(org_node, stores)

    result = (await org_node.execute(UNSUBSCRIBE, {"orgUid": remote.org_uid}))[
        "unsubscribeOrganization"
    ]

    assert result["__typename"] == "Done", result
    assert result["message"] == "Unsubscribed from organization datalayer stores"
    await eventually(lambda: _subscriptions(org_node), lambda ids: not (ids & set(stores)))


async def test_the_home_organization_cannot_be_unsubscribed(org_node: Any, simulator: Any):
    own = make_remote_org(simulator, "Ours", owner_key=0)
    home = (await org_node.execute(IMPORT, {"orgUid": own.org_uid, "isHome": True}))[
        "importOrganization"
    ]
    assert home["__typename"] == "OrganizationPayload", home

    result = (await org_node.execute(UNSUBSCRIBE, {"orgUid": own.org_uid}))[
        "unsubscribeOrganization"
    ]

    assert result["__typename"] == "PreconditionFailed"
    assert result["message"] == "you cannot unsubscribe from your home organization"


MIRROR_URL = "http://127.0.0.1:8575"


async def _our_mirror_urls(node: Any, store_id: str) -> list[str]:
    mirrors = await node.services.datalayer.get_mirrors(store_id)
    return [url for mirror in mirrors if mirror.ours for url in mirror.urls]


async def test_new_subscriptions_are_mirrored_when_configured(
    start_node: Any, node_settings: Any, simulator: Any
):
    node = await start_node(node_settings(datalayer_file_server_url=MIRROR_URL))
    remote = make_remote_org(simulator)

    # Not synced beforehand: the import subscribes every store itself (in the background).
    result = (await node.execute(IMPORT, {"orgUid": remote.org_uid}))["importOrganization"]
    assert result["__typename"] in ("OrganizationPayload", "Done"), result

    async def organization() -> Any:
        found = await node.execute(ORGANIZATION, {"orgUid": remote.org_uid})
        return found["organization"]

    await eventually(organization, lambda found: found is not None)
    for store_id in (remote.org_uid, remote.data_model_version_store_id, remote.registry_store_id):
        assert MIRROR_URL in await _our_mirror_urls(node, store_id), store_id
    # The file store is neither subscribed nor mirrored without AUTO_SUBSCRIBE_FILESTORE.
    assert await _our_mirror_urls(node, remote.file_store_id) == []


async def test_no_mirrors_without_auto_mirror_external_stores(
    start_node: Any, node_settings: Any, simulator: Any
):
    node = await start_node(
        node_settings(datalayer_file_server_url=MIRROR_URL, auto_mirror_external_stores=False)
    )
    remote = await _imported(node, simulator)

    assert await _our_mirror_urls(node, remote.registry_store_id) == []
