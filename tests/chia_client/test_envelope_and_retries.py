"""How responses and transport failures map to typed errors, and which calls are retried."""

from __future__ import annotations

import asyncio
import logging
import pickle

import httpx
import pytest
import respx

from services.chia import (
    ChiaBadResponse,
    ChiaBusinessError,
    ChiaConnectionLost,
    ChiaErrorKind,
    ChiaHTTPError,
    ChiaRpcError,
    ChiaTimeout,
    ChiaUnavailable,
    DataLayerClient,
    WalletClient,
    build_chia_clients,
    is_transient_wallet_error,
)
from services.chia.models import Change
from tests.chia_client.conftest import DL_URL, RETRY_ATTEMPTS, STORE_ID, WALLET_URL, chia_error

ROOT_OK = {"confirmed": True, "hash": "0x" + "11" * 32, "success": True, "timestamp": 1795905368}
NESTED_DL_WALLET_ERROR = (
    'RPC response failure: {"error": "DataLayerWallet not available", "structuredError": '
    '{"code": "UNKNOWN", "data": {}, "message": "DataLayerWallet not available"}, '
    '"success": false, "traceback": "Traceback (most recent call last):\\n  File \\"$VENV/lib/'
    'python3.11/site-packages/chia/rpc/util.py\\", line 81, in inner\\n    res_object = awa'
)


# --- HTTP status and body shapes ------------------------------------------------------------


async def test_500_text_body_is_http_error_with_status_and_body(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    body = "500 Internal Server Error\n\nServer got itself in trouble"
    route = router.post(f"{DL_URL}/get_root").respond(500, text=body)
    with pytest.raises(ChiaHTTPError) as caught:
        await datalayer.get_root(STORE_ID)
    assert caught.value.status == 500
    assert caught.value.body == body
    assert (caught.value.service, caught.value.method) == ("datalayer", "get_root")
    assert route.call_count == 1  # a 500 is Chia refusing the request, not a transient fault


async def test_404_unknown_endpoint(router: respx.MockRouter, wallet: WalletClient) -> None:
    router.post(f"{WALLET_URL}/get_version").respond(404, text="404: Not Found")
    with pytest.raises(ChiaHTTPError) as caught:
        await wallet.get_version()
    assert caught.value.status == 404
    assert caught.value.body == "404: Not Found"
    assert str(caught.value) == "wallet get_version: HTTP 404: 404: Not Found"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<html>not json</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"hash": null}', "no boolean 'success'"),
    ],
)
async def test_200_without_the_json_envelope_is_bad_response(
    router: respx.MockRouter, datalayer: DataLayerClient, content: bytes, reason: str
) -> None:
    route = router.post(f"{DL_URL}/get_local_root").respond(200, content=content)
    with pytest.raises(ChiaBadResponse, match=reason) as caught:
        await datalayer.get_local_root(STORE_ID)
    assert caught.value.status == 200
    assert route.call_count == 1


async def test_200_with_the_wrong_shape_is_bad_response(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    router.post(f"{DL_URL}/get_root").respond(200, json={"success": True, "hash": "zz"})
    with pytest.raises(ChiaBadResponse, match="unexpected response shape"):
        await datalayer.get_root(STORE_ID)


# --- success:false ------------------------------------------------------------------------


async def test_business_error_keeps_message_and_is_not_retried(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    message = "Already have a pending root waiting for confirmation."
    route = router.post(f"{DL_URL}/batch_update").respond(200, json=chia_error(message))
    with pytest.raises(ChiaBusinessError) as caught:
        await datalayer.batch_update(STORE_ID, [Change.insert("6b30", "7630")], fee=0)
    error = caught.value
    assert error.message == message
    assert error.raw_error == message
    assert error.code == "UNKNOWN"
    assert error.traceback_text is not None
    assert error.kind is ChiaErrorKind.PENDING_ROOT
    assert not error.nested
    assert route.call_count == 1


async def test_read_business_error_is_not_retried_either(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    route = router.post(f"{DL_URL}/get_root").respond(
        200, json=chia_error(f"Failed to get root for {STORE_ID}")
    )
    with pytest.raises(ChiaBusinessError) as caught:
        await datalayer.get_root(STORE_ID)
    assert caught.value.kind is ChiaErrorKind.FAILED_TO_GET_ROOT
    assert route.call_count == 1


async def test_nested_wallet_error_is_unwrapped(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    # The recorded traceback is cut mid-string, so the nested JSON does not even parse.
    router.post(f"{DL_URL}/get_owned_stores").respond(200, json=chia_error(NESTED_DL_WALLET_ERROR))
    with pytest.raises(ChiaBusinessError) as caught:
        await datalayer.get_owned_stores()
    error = caught.value
    assert error.message == "DataLayerWallet not available"
    assert error.raw_error == NESTED_DL_WALLET_ERROR
    assert error.nested
    assert error.kind is ChiaErrorKind.DL_WALLET_NOT_AVAILABLE
    assert is_transient_wallet_error(error)
    assert str(error) == "datalayer get_owned_stores: DataLayerWallet not available"


async def test_clear_pending_roots_nothing_to_clear_is_not_an_error(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    router.post(f"{DL_URL}/clear_pending_roots", json={"store_id": STORE_ID}).respond(
        200, json={"success": False, "root": None}
    )
    result = await datalayer.clear_pending_roots(STORE_ID)
    assert not result.cleared


# --- transport failures and retries ---------------------------------------------------------


async def test_read_timeout_is_chia_timeout_after_all_attempts(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    route = router.post(f"{DL_URL}/get_root").mock(side_effect=httpx.ReadTimeout)
    with pytest.raises(ChiaTimeout) as caught:
        await datalayer.get_root(STORE_ID)
    assert caught.value.phase == "read"
    assert caught.value.request_sent
    assert route.call_count == RETRY_ATTEMPTS


async def test_connect_timeout_is_chia_timeout_never_sent(
    router: respx.MockRouter, wallet: WalletClient
) -> None:
    router.post(f"{WALLET_URL}/get_sync_status").mock(side_effect=httpx.ConnectTimeout)
    with pytest.raises(ChiaTimeout) as caught:
        await wallet.get_sync_status()
    assert caught.value.phase == "connect"
    assert not caught.value.request_sent


async def test_read_retried_on_connect_error_and_503_then_succeeds(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    route = router.post(f"{DL_URL}/get_root").mock(
        side_effect=[
            httpx.ConnectError("[Errno 111] Connection refused"),
            httpx.Response(503, text="Service Unavailable"),
            httpx.Response(200, json=ROOT_OK),
        ]
    )
    root = await datalayer.get_root(STORE_ID)
    assert root.hash == "11" * 32
    assert route.call_count == 3


async def test_read_retried_on_remote_protocol_error(
    router: respx.MockRouter, wallet: WalletClient
) -> None:
    route = router.post(f"{WALLET_URL}/get_height_info").mock(
        side_effect=[
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            httpx.Response(200, json={"height": 6, "success": True}),
        ]
    )
    assert (await wallet.get_height_info()).height == 6
    assert route.call_count == 2


async def test_read_connect_error_exhausts_attempts_as_unavailable(
    router: respx.MockRouter, wallet: WalletClient
) -> None:
    route = router.post(f"{WALLET_URL}/get_sync_status").mock(side_effect=httpx.ConnectError)
    with pytest.raises(ChiaUnavailable) as caught:
        await wallet.get_sync_status()
    assert not caught.value.request_sent
    assert caught.value.url == WALLET_URL
    assert route.call_count == RETRY_ATTEMPTS


async def test_write_with_read_timeout_is_called_once_and_surfaces(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    route = router.post(f"{DL_URL}/create_data_store").mock(side_effect=httpx.ReadTimeout)
    with pytest.raises(ChiaTimeout) as caught:
        await datalayer.create_data_store(fee=0)
    assert caught.value.request_sent
    assert route.call_count == 1


async def test_write_with_503_is_not_retried(
    router: respx.MockRouter, wallet: WalletClient
) -> None:
    route = router.post(f"{WALLET_URL}/send_transaction").respond(503, text="busy")
    with pytest.raises(ChiaHTTPError):
        await wallet.send_transaction(address="txch1xyz", amount=1, fee=0)
    assert route.call_count == 1


async def test_write_with_connection_lost_is_not_retried(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    route = router.post(f"{DL_URL}/add_mirror").mock(side_effect=httpx.ReadError("reset"))
    with pytest.raises(ChiaConnectionLost):
        await datalayer.add_mirror(STORE_ID, ["http://127.0.0.1:8575"], amount=300, fee=0)
    assert route.call_count == 1


@pytest.mark.parametrize(
    "never_left", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout]
)
async def test_write_retried_when_the_request_never_left(
    router: respx.MockRouter, datalayer: DataLayerClient, never_left: type[Exception]
) -> None:
    route = router.post(f"{DL_URL}/batch_update").mock(
        side_effect=[
            never_left,
            httpx.Response(200, json={"success": True, "tx_id": "0x" + "aa" * 32}),
        ]
    )
    response = await datalayer.batch_update(STORE_ID, [Change.delete("6b33")], fee=0)
    assert response.tx_id == "aa" * 32
    assert route.call_count == 2


async def test_attempts_come_from_the_constructor(router: respx.MockRouter) -> None:
    route = router.post(f"{DL_URL}/subscriptions").mock(side_effect=httpx.ConnectError)
    client = DataLayerClient(
        DL_URL,
        retry_attempts=5,
        retry_max_wait=0,
        transport=httpx.MockTransport(router.async_handler),
    )
    async with client:
        with pytest.raises(ChiaUnavailable):
            await client.subscriptions()
    assert route.call_count == 5


async def test_each_call_is_logged_at_debug_with_method_and_duration(
    router: respx.MockRouter, datalayer: DataLayerClient, caplog: pytest.LogCaptureFixture
) -> None:
    router.post(f"{DL_URL}/get_root").respond(200, json=ROOT_OK)
    with caplog.at_level(logging.DEBUG, logger="services.chia"):
        await datalayer.get_root(STORE_ID)
    [record] = [r for r in caplog.records if r.name == "services.chia.client"]
    assert record.levelno == logging.DEBUG
    assert record.getMessage().startswith("chia datalayer get_root ok in ")
    assert record.getMessage().endswith(" ms")


async def test_retries_are_logged_as_warnings(
    router: respx.MockRouter, wallet: WalletClient, caplog: pytest.LogCaptureFixture
) -> None:
    router.post(f"{WALLET_URL}/get_version").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"version": "2.7.5", "success": True}),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="services.chia"):
        assert await wallet.get_version() == "2.7.5"
    assert any("retrying" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_errors_survive_pickling(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    # arq stores a failed job's exception pickled; keyword-only constructors must round-trip.
    router.post(f"{DL_URL}/get_owned_stores").respond(200, json=chia_error(NESTED_DL_WALLET_ERROR))
    with pytest.raises(ChiaBusinessError) as caught:
        await datalayer.get_owned_stores()
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, ChiaBusinessError)
    assert (copy.message, copy.raw_error, copy.service, copy.method) == (
        "DataLayerWallet not available",
        NESTED_DL_WALLET_ERROR,
        "datalayer",
        "get_owned_stores",
    )
    timeout = ChiaTimeout(
        "read timeout",
        service="wallet",
        method="get_sync_status",
        url=WALLET_URL,
        request_sent=True,
        phase="read",
    )
    timeout_copy = pickle.loads(pickle.dumps(timeout))
    assert isinstance(timeout_copy, ChiaRpcError)
    assert timeout_copy.phase == "read"
    assert str(timeout_copy) == str(timeout)


async def test_one_client_serves_concurrent_tasks(
    router: respx.MockRouter, datalayer: DataLayerClient
) -> None:
    route = router.post(f"{DL_URL}/get_root").respond(200, json=ROOT_OK)
    roots = await asyncio.gather(*(datalayer.get_root(STORE_ID) for _ in range(25)))
    assert {root.hash for root in roots} == {"11" * 32}
    assert route.call_count == 25


def test_factory_passes_timeouts_per_service() -> None:
    datalayer, wallet = build_chia_clients(
        datalayer_url=DL_URL,
        wallet_url=WALLET_URL,
        ssl_folder=None,
        connect_timeout=4,
        datalayer_timeout=1800,
        wallet_timeout=300,
        retry_attempts=1,
        retry_max_wait=0,
    )
    assert (datalayer.connect_timeout, datalayer.read_timeout) == (4, 1800)
    assert (wallet.connect_timeout, wallet.read_timeout) == (4, 300)
