"""The simulator's private CA and certificates, laid out like CHIA_ROOT/config/ssl.

```
<data_dir>/ssl/ca/private_ca.{crt,key}            private CA (signs everything below)
<data_dir>/ssl/server/private_simulator.{crt,key}  server certificate (localhost, 127.0.0.1, ::1)
<data_dir>/keys/<n>/config/ssl/                     what a client of key n uses as its ssl folder:
    ca/private_ca.crt
    data_layer/private_data_layer.{crt,key}
    wallet/private_wallet.{crt,key}
```

Certificates are made once and reused on restart (a client holding an old folder keeps
working). Keys are ECDSA P-256: fast to generate, accepted by every TLS stack the gateway uses.
Like real Chia, any client certificate signed by the CA is accepted on every key's paths.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_DAYS = 3650
_CLIENT_PAIRS = {
    "datalayer": ("data_layer", "private_data_layer"),
    "wallet": ("wallet", "private_wallet"),
}


@dataclass(frozen=True)
class SslLayout:
    """Paths of the simulator's certificates under a data dir."""

    data_dir: Path

    @property
    def ca_cert(self) -> Path:
        """The private CA certificate (what the server trusts for client certificates)."""
        return self.data_dir / "ssl" / "ca" / "private_ca.crt"

    @property
    def ca_key(self) -> Path:
        """The private CA key."""
        return self.data_dir / "ssl" / "ca" / "private_ca.key"

    @property
    def server_cert(self) -> Path:
        """The server certificate."""
        return self.data_dir / "ssl" / "server" / "private_simulator.crt"

    @property
    def server_key(self) -> Path:
        """The server key."""
        return self.data_dir / "ssl" / "server" / "private_simulator.key"

    def chia_root(self, key: int) -> Path:
        """A CHIA_ROOT-like folder for key `key` (its certificates are under config/ssl)."""
        return self.data_dir / "keys" / str(key)

    def ssl_folder(self, key: int) -> Path:
        """The `<CHIA_ROOT>/config/ssl` folder of key `key`."""
        return self.chia_root(key) / "config" / "ssl"

    def client_pair(self, key: int, service: str) -> tuple[Path, Path]:
        """(certificate, key) a `service` ('datalayer'/'wallet') client of key `key` presents."""
        folder, stem = _CLIENT_PAIRS[service]
        base = self.ssl_folder(key) / folder
        return base / f"{stem}.crt", base / f"{stem}.key"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Chia"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "cadt-gateway simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _issue(
    *,
    subject: str,
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    server: bool = False,
    client: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    is_ca = issuer_cert is None
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(subject) if is_ca else issuer_cert.subject)  # type: ignore[union-attr]
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    signer = key if is_ca else issuer_key
    assert signer is not None
    return builder.sign(signer, hashes.SHA256()), key


def _load_ca(layout: SslLayout) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not (layout.ca_cert.is_file() and layout.ca_key.is_file()):
        return None
    cert = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return cert, key


def ensure_certificates(data_dir: Path, keys: int) -> SslLayout:
    """Create whatever certificates are missing for `keys` keys; reuse the rest."""
    layout = SslLayout(Path(data_dir))
    loaded = _load_ca(layout)
    if loaded is None:
        # A new CA invalidates every certificate it did not sign: start the tree over.
        for folder in (layout.data_dir / "ssl", layout.data_dir / "keys"):
            shutil.rmtree(folder, ignore_errors=True)
        ca_cert, ca_key = _issue(
            subject="Chia CA (cadt-gateway simulator)", issuer_cert=None, issuer_key=None
        )
        _write_private(layout.ca_key, _key_pem(ca_key))
        _write_public(layout.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    else:
        ca_cert, ca_key = loaded
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    if not (layout.server_cert.is_file() and layout.server_key.is_file()):
        cert, key = _issue(subject="localhost", issuer_cert=ca_cert, issuer_key=ca_key, server=True)
        _write_private(layout.server_key, _key_pem(key))
        _write_public(layout.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    for index in range(keys):
        ca_copy = layout.ssl_folder(index) / "ca" / "private_ca.crt"
        if not ca_copy.is_file():
            _write_public(ca_copy, ca_pem)
        for service in _CLIENT_PAIRS:
            cert_path, key_path = layout.client_pair(index, service)
            if cert_path.is_file() and key_path.is_file():
                continue
            cert, key = _issue(subject="Chia", issuer_cert=ca_cert, issuer_key=ca_key, client=True)
            _write_private(key_path, _key_pem(key))
            _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return layout
