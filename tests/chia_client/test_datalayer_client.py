"""DataLayer client: request bodies on the wire, responses as typed and normalised models."""

from __future__ import annotations

import httpx
import pytest
import respx

from services.chia import ZERO_HASH, DataLayerClient, InvalidHex, InvalidStoreId
from services.chia.models import Change, KvDiffType
from tests.chia_client.conftest import DL_URL, HASH_A, HASH_B, STORE_ID, UNKNOWN_ID

UPPER_0X_ID = "0x" + STORE_ID.upper()


def ok(**fields: object) -> httpx.Response:
    """A Chia success response."""
    return httpx.Response(200, json={**fields, "success": True})


async def test_store_ids_and_hashes_come_back_bare_lowercase(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    # get_root answers with 0x hex; the upper case shows normalisation, not pass-through.
    router.post(f"{DL_URL}/get_root", json={"id": STORE_ID}).mock(
        return_value=ok(confirmed=True, hash="0x" + HASH_A.upper(), timestamp=1795905368)
    )
    root = await datalayer.get_root(UPPER_0X_ID)
    assert root.hash == HASH_A
    assert root.confirmed
    assert root.timestamp == 1795905368


async def test_get_root_hash_may_be_null(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    router.post(f"{DL_URL}/get_root").mock(return_value=ok(confirmed=False, hash=None, timestamp=0))
    assert (await datalayer.get_root(STORE_ID)).hash is None


async def test_get_keys_values_normalises_keys_values_and_hashes(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    router.post(f"{DL_URL}/get_keys_values", json={"id": STORE_ID}).mock(
        return_value=ok(
            keys_values=[
                {"atom": None, "hash": "0x" + HASH_A, "key": "0x6B32", "value": "0x7632"},
                {"atom": None, "hash": "0x" + HASH_B, "key": "0x6b33", "value": "0x7633"},
            ]
        )
    )
    result = await datalayer.get_keys_values(STORE_ID)
    assert [(kv.key, kv.value, kv.hash) for kv in result.keys_values] == [
        ("6b32", "7632", HASH_A),
        ("6b33", "7633", HASH_B),
    ]
    assert result.total_pages is None


async def test_get_keys_values_paginated_at_a_root(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    route = router.post(
        f"{DL_URL}/get_keys_values",
        json={"id": STORE_ID, "root_hash": HASH_A, "page": 0, "max_page_size": 100},
    ).mock(
        return_value=ok(
            keys_values=[{"atom": None, "hash": "0x" + HASH_B, "key": "0x6b33", "value": "0x7633"}],
            root_hash="0x" + HASH_A,
            total_bytes=12,
            total_pages=1,
        )
    )
    result = await datalayer.get_keys_values(
        STORE_ID, root_hash="0X" + HASH_A.upper(), page=0, max_page_size=100
    )
    assert route.called
    assert (result.root_hash, result.total_pages, result.total_bytes) == (HASH_A, 1, 12)


async def test_get_keys_and_get_value(router: respx.MockRouter, datalayer: DataLayerClient) -> None:
    router.post(f"{DL_URL}/get_keys").mock(return_value=ok(keys=["0x6b31", "0x6b33"]))
    router.post(f"{DL_URL}/get_value", json={"id": STORE_ID, "key": "6b31"}).mock(
        return_value=ok(value="7631")
    )
    assert (await datalayer.get_keys(STORE_ID)).keys == ["6b31", "6b33"]
    assert await datalayer.get_value(STORE_ID, "0x6B31") == "7631"


async def test_get_local_root_may_be_null(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    router.post(f"{DL_URL}/get_local_root").mock(return_value=ok(hash=None))
    assert await datalayer.get_local_root(STORE_ID) is None


async def test_get_roots(router: respx.MockRouter, datalayer: DataLayerClient) -> None:
    router.post(f"{DL_URL}/get_roots", json={"ids": [STORE_ID]}).mock(
        return_value=ok(
            root_hashes=[
                {"confirmed": True, "hash": "0x" + HASH_A, "id": "0x" + STORE_ID, "timestamp": 5}
            ]
        )
    )
    [root] = await datalayer.get_roots([UPPER_0X_ID])
    assert (root.id, root.hash, root.confirmed, root.timestamp) == (STORE_ID, HASH_A, True, 5)


async def test_get_root_history(router: respx.MockRouter, datalayer: DataLayerClient) -> None:
    router.post(f"{DL_URL}/get_root_history").mock(
        return_value=ok(
            root_history=[
                {"confirmed": True, "root_hash": "0x" + ZERO_HASH, "timestamp": 1},
                {"confirmed": True, "root_hash": "0x" + HASH_A, "timestamp": 2},
            ]
        )
    )
    history = await datalayer.get_root_history(STORE_ID)
    assert [entry.root_hash for entry in history] == [ZERO_HASH, HASH_A]


async def test_get_kv_diff(router: respx.MockRouter, datalayer: DataLayerClient) -> None:
    router.post(
        f"{DL_URL}/get_kv_diff", json={"id": STORE_ID, "hash_1": ZERO_HASH, "hash_2": HASH_A}
    ).mock(
        return_value=ok(
            diff=[
                {"key": "6b31", "type": "DELETE", "value": "7631"},
                {"key": "6b31", "type": "INSERT", "value": "aa31"},
            ]
        )
    )
    diff = await datalayer.get_kv_diff(STORE_ID, "0x" + ZERO_HASH, HASH_A)
    assert [(d.type, d.key, d.value) for d in diff.diff] == [
        (KvDiffType.DELETE, "6b31", "7631"),
        (KvDiffType.INSERT, "6b31", "aa31"),
    ]


async def test_get_sync_status(router: respx.MockRouter, datalayer: DataLayerClient) -> None:
    router.post(f"{DL_URL}/get_sync_status", json={"id": STORE_ID}).mock(
        return_value=ok(
            sync_status={
                "generation": 8,
                "root_hash": HASH_A,
                "target_generation": 9,
                "target_root_hash": HASH_B.upper(),
            }
        )
    )
    status = await datalayer.get_sync_status(STORE_ID)
    assert (status.generation, status.target_generation) == (8, 9)
    assert status.target_root_hash == HASH_B
    assert not status.synced


async def test_subscriptions_and_owned_stores(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    router.post(f"{DL_URL}/subscriptions", json={}).mock(return_value=ok(store_ids=[STORE_ID]))
    router.post(f"{DL_URL}/get_owned_stores", json={}).mock(
        return_value=ok(store_ids=["0x" + UNKNOWN_ID.upper()])
    )
    assert await datalayer.subscriptions() == [STORE_ID]
    assert await datalayer.get_owned_stores() == [UNKNOWN_ID]


async def test_get_mirrors(router: respx.MockRouter, datalayer: DataLayerClient) -> None:
    router.post(f"{DL_URL}/get_mirrors").mock(
        return_value=ok(
            mirrors=[
                {
                    "amount": 1,
                    "coin_id": "0x" + HASH_A,
                    "confirmed_at_height": 5,
                    "launcher_id": "0x" + STORE_ID,
                    "ours": True,
                    "urls": ["http://127.0.0.1:8575"],
                },
                {
                    "amount": 300,
                    "coin_id": HASH_B,
                    "launcher_id": STORE_ID,
                    "ours": False,
                    "urls": [],
                },
            ]
        )
    )
    mine, pending = await datalayer.get_mirrors(STORE_ID)
    assert (mine.coin_id, mine.launcher_id, mine.amount) == (HASH_A, STORE_ID, 1)
    assert mine.urls == ["http://127.0.0.1:8575"]
    assert mine.ours and mine.confirmed and mine.confirmed_at_height == 5
    assert pending.confirmed_at_height == 0 and not pending.confirmed and not pending.ours


async def test_create_data_store_verbose_returns_tx_ids(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    router.post(f"{DL_URL}/create_data_store", json={"fee": 3000, "verbose": True}).mock(
        return_value=ok(
            id=STORE_ID,
            txs=[
                {
                    "name": "0x" + HASH_A,
                    "confirmed": False,
                    "confirmed_at_height": 0,
                    "created_at_time": 1795905368,
                    "wallet_id": 2,
                    "amount": 1,
                    "fee_amount": 3000,
                    "sent_to": [["peer-a", 3, "INVALID_FEE_LOW_FEE"], ["peer-b", 3, None]],
                    "additions": [],
                    "removals": [],
                    "spend_bundle": None,
                    "memos": {},
                }
            ],
        )
    )
    created = await datalayer.create_data_store(fee=3000)
    assert created.id == STORE_ID
    assert created.tx_ids == [HASH_A]
    [tx] = created.txs
    assert tx.rejected and not tx.in_mempool
    assert tx.sent_to[0].error == "INVALID_FEE_LOW_FEE"


async def test_batch_update_sends_bare_hex_changelist(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    route = router.post(
        f"{DL_URL}/batch_update",
        json={
            "id": STORE_ID,
            "changelist": [
                {"action": "delete", "key": "6b33"},
                {"action": "upsert", "key": "6b31", "value": "aa31"},
                {"action": "insert", "key": "6b34", "value": "7634"},
            ],
            "fee": 3000,
        },
    ).mock(return_value=ok(tx_id="0x" + HASH_A))
    response = await datalayer.batch_update(
        UPPER_0X_ID,
        [Change.delete("0x6B33"), Change.upsert("6b31", "AA31"), Change.insert("6b34", "7634")],
        fee=3000,
    )
    assert route.called
    assert response.tx_id == HASH_A


async def test_subscription_and_mirror_writes_send_chia_shapes(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    urls = ["http://127.0.0.1:8575"]
    routes = [
        router.post(f"{DL_URL}/subscribe", json={"id": STORE_ID}).mock(return_value=ok()),
        router.post(f"{DL_URL}/subscribe", json={"id": UNKNOWN_ID, "urls": urls, "fee": 0}).mock(
            return_value=ok()
        ),
        router.post(f"{DL_URL}/unsubscribe", json={"id": STORE_ID, "retain": True}).mock(
            return_value=ok()
        ),
        router.post(f"{DL_URL}/remove_subscriptions", json={"id": STORE_ID, "urls": urls}).mock(
            return_value=ok()
        ),
        router.post(
            f"{DL_URL}/add_mirror", json={"id": STORE_ID, "urls": urls, "amount": 300, "fee": 3000}
        ).mock(return_value=ok()),
        router.post(f"{DL_URL}/delete_mirror", json={"coin_id": HASH_A, "fee": 3000}).mock(
            return_value=ok()
        ),
    ]
    await datalayer.subscribe(STORE_ID)
    await datalayer.subscribe(UNKNOWN_ID, urls=urls, fee=0)
    await datalayer.unsubscribe(STORE_ID, retain=True)
    await datalayer.remove_subscriptions(STORE_ID, urls)
    await datalayer.add_mirror(STORE_ID, urls, amount=300, fee=3000)
    await datalayer.delete_mirror("0x" + HASH_A, fee=3000)
    assert all(route.call_count == 1 for route in routes)


async def test_clear_pending_roots(router: respx.MockRouter, datalayer: DataLayerClient) -> None:
    router.post(f"{DL_URL}/clear_pending_roots", json={"store_id": STORE_ID}).mock(
        # Chia 2.7.5's shape (recorded by the contract suite): `tree_id`, bare hex.
        return_value=ok(
            root={"generation": 3, "node_hash": HASH_A, "status": 1, "tree_id": STORE_ID}
        )
    )
    result = await datalayer.clear_pending_roots(STORE_ID)
    assert result.cleared
    assert result.root is not None and result.root.node_hash == HASH_A
    assert result.root.store_id == STORE_ID


async def test_get_routes(router: respx.MockRouter, datalayer: DataLayerClient) -> None:
    router.post(f"{DL_URL}/get_routes").mock(return_value=ok(routes=["/get_root", "/get_routes"]))
    assert await datalayer.get_routes() == ["/get_root", "/get_routes"]


async def test_unknown_response_fields_are_kept(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    router.post(f"{DL_URL}/get_root").mock(
        return_value=ok(confirmed=True, hash=None, timestamp=1, coin_id="0x" + HASH_A)
    )
    root = await datalayer.get_root(STORE_ID)
    assert root.model_extra == {"coin_id": "0x" + HASH_A}


@pytest.mark.parametrize(
    "bad_id",
    ["zz", "", "0x", STORE_ID[:-2], STORE_ID + "00", "0x" + "g" * 64, " " + "1" * 63],
)
async def test_invalid_store_id_is_rejected_before_any_http_call(
    router: respx.MockRouter, datalayer: DataLayerClient, bad_id: str
) -> None:
    calls = [
        datalayer.get_root(bad_id),
        datalayer.get_keys_values(bad_id),
        datalayer.batch_update(bad_id, [Change.insert("00", "00")], fee=0),
        datalayer.subscribe(bad_id),
        datalayer.get_roots([STORE_ID, bad_id]),
        datalayer.clear_pending_roots(bad_id),
    ]
    for call in calls:
        with pytest.raises(InvalidStoreId, match="invalid store id") as caught:
            await call
        assert repr(bad_id) in str(caught.value)
        assert isinstance(caught.value, ValueError)
    assert router.calls.call_count == 0


async def test_invalid_hashes_and_keys_are_rejected_before_any_http_call(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    with pytest.raises(InvalidHex):
        await datalayer.get_kv_diff(STORE_ID, HASH_A, "abc")
    with pytest.raises(InvalidHex):
        await datalayer.get_keys_values(STORE_ID, root_hash="0x12")
    with pytest.raises(InvalidHex):
        await datalayer.delete_mirror("not-hex", fee=0)
    with pytest.raises(InvalidHex):
        await datalayer.get_value(STORE_ID, "6b3")
    with pytest.raises(InvalidHex):
        Change.insert("xyz", "00")
    assert router.calls.call_count == 0
