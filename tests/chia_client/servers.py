"""Real servers for the transport tests: a throwaway private CA and an in-process uvicorn.

The listening socket is bound before uvicorn starts, so a client can connect at once (the
kernel queues the connection) and no test waits for a readiness flag.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.types import ASGIApp


@dataclass(frozen=True)
class Pki:
    """Files of a throwaway private CA, a server pair and a Chia-style client cert folder."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    ssl_folder: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(root: Path) -> Pki:
    """A private CA, a server pair, and client pairs laid out like `<CHIA_ROOT>/config/ssl`."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("Test Private CA", ca_key, _name("Test Private CA"), ca_key, ca=True)
    _write_cert(root / "ca" / "private_ca.crt", ca_cert)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        "Chia", server_key, ca_cert.subject, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH
    )
    _write_cert(root / "server.crt", server_cert)
    _write_key(root / "server.key", server_key)

    ssl_folder = root / "ssl"
    for service in ("data_layer", "wallet"):
        client_key = ec.generate_private_key(ec.SECP256R1())
        client_cert = _issue(
            "Chia", client_key, ca_cert.subject, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH
        )
        _write_cert(ssl_folder / service / f"private_{service}.crt", client_cert)
        _write_key(ssl_folder / service / f"private_{service}.key", client_key)
    return Pki(
        ca_cert=root / "ca" / "private_ca.crt",
        server_cert=root / "server.crt",
        server_key=root / "server.key",
        ssl_folder=ssl_folder,
    )


@asynccontextmanager
async def serve(app: ASGIApp, **config: Any) -> AsyncIterator[int]:
    """Run `app` with uvicorn on 127.0.0.1 and an ephemeral port; yield the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="off", ws="none", http="h11", **config)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield port
    finally:
        server.should_exit = True
        server.force_exit = True  # don't wait for requests a test left hanging
        await task
        sock.close()


def mutual_tls_config(pki: Pki) -> dict[str, Any]:
    """uvicorn options of a server that, like Chia, requires a client cert from its CA."""
    return {
        "ssl_certfile": str(pki.server_cert),
        "ssl_keyfile": str(pki.server_key),
        "ssl_ca_certs": str(pki.ca_cert),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
