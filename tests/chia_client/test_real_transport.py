"""The clients against real sockets: mutual TLS like Chia's, refused connections, read timeouts."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.chia import (
    ChiaCertificateError,
    ChiaConnectionLost,
    ChiaTimeout,
    ChiaTLSError,
    ChiaTransportError,
    ChiaUnavailable,
    DataLayerClient,
    WalletClient,
    build_chia_clients,
)
from tests.chia_client.conftest import STORE_ID
from tests.chia_client.servers import make_pki, mutual_tls_config, serve

ROOT_HASH = "0x" + "12" * 32


async def get_root(request: Request) -> JSONResponse:
    """DataLayer's get_root, echoing the id it received."""
    body = await request.json()
    return JSONResponse(
        {
            "confirmed": True,
            "hash": ROOT_HASH,
            "timestamp": 1,
            "id_seen": body["id"],
            "success": True,
        }
    )


async def get_sync_status(request: Request) -> JSONResponse:
    """The wallet's get_sync_status of a synced wallet."""
    return JSONResponse(
        {"genesis_initialized": True, "synced": True, "syncing": False, "success": True}
    )


def chia_like_app(release: asyncio.Event | None = None) -> Starlette:
    """DataLayer's get_root, the wallet's get_sync_status, and a request that never answers."""

    async def hang(request: Request) -> JSONResponse:
        assert release is not None
        await release.wait()
        return JSONResponse({"success": True})

    return Starlette(
        routes=[
            Route("/get_root", get_root, methods=["POST"]),
            Route("/get_sync_status", get_sync_status, methods=["POST"]),
            Route("/get_routes", hang, methods=["POST"]),
        ]
    )


async def test_mutual_tls_round_trip_with_chia_cert_layout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(tmp_path)
    async with serve(chia_like_app(), **mutual_tls_config(pki)) as port:
        with caplog.at_level(logging.DEBUG):
            async with build_chia_clients(
                datalayer_url=f"https://127.0.0.1:{port}",
                wallet_url=f"https://127.0.0.1:{port}/",
                ssl_folder=pki.ssl_folder,
                connect_timeout=5,
                datalayer_timeout=5,
                wallet_timeout=5,
                retry_attempts=1,
                retry_max_wait=0,
            ) as clients:
                root = await clients.datalayer.get_root("0x" + STORE_ID)
                status = await clients.wallet.get_sync_status()
    assert root.hash == "12" * 32
    assert root.model_extra == {"id_seen": STORE_ID}
    assert status.synced
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "chia datalayer get_root ok in" in logged
    assert "BEGIN" not in logged  # no certificate or key material in any log line


async def test_without_client_cert_the_handshake_fails_clearly(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    async with serve(chia_like_app(), **mutual_tls_config(pki)) as port:
        url = f"https://127.0.0.1:{port}"
        async with DataLayerClient(
            url, ssl_folder=None, retry_attempts=3, retry_max_wait=0
        ) as client:
            with pytest.raises(ChiaTLSError) as caught:
                await client.get_root(STORE_ID)
    error = caught.value
    assert isinstance(error, ChiaUnavailable)
    assert not error.request_sent
    assert "TLS handshake" in str(error)
    assert "no client certificate is configured" in str(error)


async def test_cert_from_another_ca_is_refused(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "node")
    stranger = make_pki(tmp_path / "stranger")
    async with serve(chia_like_app(), **mutual_tls_config(pki)) as port:
        client = WalletClient(
            f"https://127.0.0.1:{port}", ssl_folder=stranger.ssl_folder, retry_max_wait=0
        )
        async with client:
            with pytest.raises(ChiaTransportError) as caught:
                await client.get_sync_status()
    # Whether the client reads the server's alert or only the reset that follows it is a race;
    # either way the error names the refused certificate.
    assert isinstance(caught.value, ChiaTLSError | ChiaConnectionLost)
    assert str(stranger.ssl_folder / "wallet" / "private_wallet.crt") in str(caught.value)


def test_missing_cert_folder_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "no-such-root" / "config" / "ssl"
    with pytest.raises(ChiaCertificateError) as caught:
        DataLayerClient("https://127.0.0.1:8562", ssl_folder=folder)
    expected = folder / "data_layer" / "private_data_layer.crt"
    assert caught.value.path == expected
    assert str(expected) in str(caught.value)


def test_missing_wallet_key_names_the_key(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    key = pki.ssl_folder / "wallet" / "private_wallet.key"
    key.unlink()
    with pytest.raises(ChiaCertificateError) as caught:
        build_chia_clients(
            datalayer_url="https://127.0.0.1:8562",
            wallet_url="https://127.0.0.1:9256",
            ssl_folder=pki.ssl_folder,
            connect_timeout=1,
            datalayer_timeout=1,
            wallet_timeout=1,
            retry_attempts=1,
            retry_max_wait=0,
        )
    assert caught.value.path == key
    assert str(key) in str(caught.value)


def test_garbage_cert_is_a_certificate_error(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    cert = pki.ssl_folder / "data_layer" / "private_data_layer.crt"
    cert.write_text("not a certificate")
    with pytest.raises(ChiaCertificateError, match="cannot load") as caught:
        DataLayerClient("https://127.0.0.1:8562", ssl_folder=pki.ssl_folder)
    assert caught.value.path == cert
    assert "not a certificate" not in str(caught.value)


def test_plain_http_needs_no_certificates(tmp_path: Path) -> None:
    # http:// (tests, the in-process simulator) ignores the folder, even a missing one.
    clients = build_chia_clients(
        datalayer_url="http://127.0.0.1:8562",
        wallet_url="http://127.0.0.1:9256",
        ssl_folder=tmp_path / "missing",
        connect_timeout=1,
        datalayer_timeout=1,
        wallet_timeout=1,
        retry_attempts=1,
        retry_max_wait=0,
    )
    datalayer, wallet = clients
    assert (datalayer.url, wallet.url) == ("http://127.0.0.1:8562", "http://127.0.0.1:9256")


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now.
    async with WalletClient(
        f"http://127.0.0.1:{port}", retry_attempts=2, retry_max_wait=0
    ) as client:
        with pytest.raises(ChiaUnavailable) as caught:
            await client.get_sync_status()
    assert not caught.value.request_sent
    assert caught.value.method == "get_sync_status"


async def test_read_timeout_from_the_constructor_is_enforced() -> None:
    release = asyncio.Event()
    async with serve(chia_like_app(release)) as port:
        client = DataLayerClient(
            f"http://127.0.0.1:{port}", read_timeout=0.2, retry_attempts=1, retry_max_wait=0
        )
        async with client:
            with pytest.raises(ChiaTimeout) as caught:
                await client.get_routes()
        release.set()
    assert caught.value.phase == "read"
    assert caught.value.request_sent
    assert "0.2 s" in str(caught.value)
