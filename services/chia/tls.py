"""Mutual TLS as Chia does it: a client certificate from the node's private CA, no server check.

Chia's RPC servers present certificates signed by the node's private CA, for no host name, so
the server certificate cannot be verified (CADT turns verification off). The context built here
is given to these clients only; nothing else in the process loses verification.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from services.chia.errors import ChiaCertificateError, Service

#: Where each service's client pair lives under the certificate folder (`<CHIA_ROOT>/config/ssl`).
_CERT_SUBPATHS: dict[Service, tuple[str, str]] = {
    "datalayer": ("data_layer/private_data_layer.crt", "data_layer/private_data_layer.key"),
    "wallet": ("wallet/private_wallet.crt", "wallet/private_wallet.key"),
}


def client_cert_paths(ssl_folder: Path | str, service: Service) -> tuple[Path, Path]:
    """The (certificate, key) files a client of `service` presents, under `ssl_folder`."""
    folder = Path(ssl_folder).expanduser()
    cert, key = _CERT_SUBPATHS[service]
    return folder / cert, folder / key


def insecure_client_context() -> ssl.SSLContext:
    """A TLS context that skips server verification and presents no client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def build_client_ssl_context(ssl_folder: Path | str, service: Service) -> ssl.SSLContext:
    """The mutual-TLS context for `service`; raise ChiaCertificateError naming a bad file."""
    cert_path, key_path = client_cert_paths(ssl_folder, service)
    for path in (cert_path, key_path):
        _check_readable(path, service)
    context = insecure_client_context()
    try:
        context.load_cert_chain(certfile=cert_path, keyfile=key_path)
    except (ssl.SSLError, OSError, ValueError) as error:
        raise ChiaCertificateError(
            f"cannot load the {service} client certificate {cert_path} with key {key_path}: "
            f"{error}",
            path=cert_path,
        ) from error
    return context


def _check_readable(path: Path, service: Service) -> None:
    if not path.exists():
        raise ChiaCertificateError(
            f"{service} client certificate file not found: {path} "
            "(the folder is <CHIA_ROOT>/config/ssl unless a certificate folder is configured)",
            path=path,
        )
    if not path.is_file():
        raise ChiaCertificateError(
            f"{service} client certificate path is not a file: {path}", path=path
        )
    if not os.access(path, os.R_OK):
        raise ChiaCertificateError(
            f"{service} client certificate file is not readable: {path}", path=path
        )
