"""The envelope and error shapes (chia-rpc.md "Envelope and error shapes"), on both targets."""

from __future__ import annotations

import pytest

from services.chia import (
    Change,
    ChiaErrorKind,
    ChiaHTTPError,
    ChiaUnavailable,
    DataLayerClient,
    InvalidStoreId,
    is_invalid_launcher_error,
    is_no_subscription_error,
    is_store_not_in_local_db_error,
)
from services.chia.models import ChiaRequest, EmptyResponse
from tests.contract.conftest import UNKNOWN_ID, assert_envelope, business_error
from tests.contract.targets import Target


class RawIdRequest(ChiaRequest):
    """`{id}` without the client's validation: what a careless caller would send."""

    id: str


class NoFieldsRequest(ChiaRequest):
    """`{}` where Chia needs fields."""


async def test_unknown_store_ids_give_chias_exact_errors(target: Target, store: str):
    dl = target.owner.dl
    unknown = UNKNOWN_ID

    status = await business_error(dl.get_sync_status(unknown))
    assert_envelope(
        status,
        f"No store id stored in the local database for {unknown}",
        ChiaErrorKind.STORE_NOT_IN_LOCAL_DB,
    )
    assert is_store_not_in_local_db_error(status)
    assert not status.nested

    root = await business_error(dl.get_root(unknown))
    assert_envelope(root, f"Failed to get root for {unknown}", ChiaErrorKind.FAILED_TO_GET_ROOT)

    for read in (dl.get_keys_values, dl.get_local_root):
        error = await business_error(read(unknown))
        assert_envelope(
            error, f"No generations found for store ID: {unknown}", ChiaErrorKind.NO_GENERATIONS
        )

    write = await business_error(dl.batch_update(unknown, [Change.insert("00", "00")], fee=0))
    assert_envelope(
        write,
        f"Singleton with launcher ID {unknown} is not owned by DL Wallet",
        ChiaErrorKind.NOT_OWNED,
    )

    unsubscribe = await business_error(dl.unsubscribe(unknown))
    assert_envelope(
        unsubscribe, "No subscription found for the given store_id.", ChiaErrorKind.NO_SUBSCRIPTION
    )
    assert is_no_subscription_error(unsubscribe)

    subscribe = await business_error(dl.subscribe(unknown, urls=[]))
    assert subscribe.message == f"Launcher ID {unknown} is not a valid coin"
    assert subscribe.nested, "DataLayer relays the wallet's error as 'RPC response failure: {...}'"
    assert subscribe.raw_error.startswith("RPC response failure: {")
    assert is_invalid_launcher_error(subscribe)
    assert unknown not in await dl.subscriptions()

    # Reads that answer an unknown store with success and empty lists.
    assert await dl.get_root_history(unknown) == []
    assert await dl.get_mirrors(unknown) == []
    assert await dl.get_roots([unknown]) == []


async def test_malformed_ids_are_refused_by_the_client_before_any_call(target: Target):
    dl = target.owner.dl
    for bad in ("zz", "ab" * 31, "ab" * 33, "0x" + "g" * 64, ""):
        with pytest.raises(InvalidStoreId):
            await dl.get_root(bad)
        with pytest.raises(InvalidStoreId):
            await dl.subscribe(bad)
    # A client whose server does not exist still refuses them: nothing was sent.
    async with DataLayerClient("https://127.0.0.1:1", retry_attempts=1) as nowhere:
        with pytest.raises(InvalidStoreId):
            await nowhere.get_sync_status("zz")
        with pytest.raises(ChiaUnavailable):
            await nowhere.get_sync_status(UNKNOWN_ID)


async def test_the_server_refuses_what_the_client_would_not_send(target: Target, store: str):
    dl = target.owner.dl
    malformed = await business_error(
        dl.call("get_root", RawIdRequest(id="zz"), EmptyResponse, write=False)
    )
    assert_envelope(
        malformed,
        "non-hexadecimal number found in fromhex() arg at position 0",
        ChiaErrorKind.INVALID_HEX,
    )
    missing = await business_error(
        dl.call("get_root", NoFieldsRequest(), EmptyResponse, write=False)
    )
    assert_envelope(missing, "id", None)


async def test_unknown_methods_are_http_404(target: Target):
    for client in (target.owner.dl, target.owner.wallet):
        with pytest.raises(ChiaHTTPError) as caught:
            await client.call("no_such_method", None, EmptyResponse, write=False)
        assert caught.value.status == 404
        assert caught.value.body == "404: Not Found"


async def test_wallet_errors_are_plain_envelopes(target: Target):
    error = await business_error(target.owner.wallet.get_wallet_balance(999))
    assert_envelope(error, "999", None)
    assert not error.nested


async def test_routes_include_every_method_the_gateway_calls(target: Target):
    routes = set(await target.owner.dl.get_routes())
    used = {
        "create_data_store",
        "batch_update",
        "get_keys_values",
        "get_value",
        "get_root",
        "get_local_root",
        "get_roots",
        "get_root_history",
        "get_kv_diff",
        "get_sync_status",
        "get_owned_stores",
        "subscribe",
        "unsubscribe",
        "remove_subscriptions",
        "subscriptions",
        "add_mirror",
        "delete_mirror",
        "get_mirrors",
        "clear_pending_roots",
        "get_routes",
    }
    assert {f"/{method}" for method in used} <= routes
