"""TLS material for local use: a development CA, a ``localhost`` server certificate and a
client certificate for mutual TLS, made with ``cryptography`` on first use.

The files live in ``<data_dir>/tls/`` (never in the repo).  Clients verify the server
against ``ca.pem``; ``lootlab serve`` prints its path.  ``make_cert`` also makes the broken
certificates (expired, wrong host) that the error tests need.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ..paths import data_lock

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
_VALID_DAYS = 365


@dataclass(frozen=True)
class TLSFiles:
    """Paths of one CA with a server and a client certificate it signed."""

    ca: Path
    ca_key: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def read(self, name: str) -> bytes:
        return Path(getattr(self, name)).read_bytes()


def tls_dir() -> Path:
    from ..paths import data_dir
    return data_dir() / "tls"


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lootlab development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(common_name: str = "lootlab development CA", days: int = _VALID_DAYS
            ) -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _new_key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return _pem_cert(cert), _pem_key(key)


def make_cert(ca_cert: bytes, ca_key: bytes, *, hosts: tuple[str, ...] = DEFAULT_HOSTS,
              client: bool = False, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A leaf certificate signed by the CA: (certificate PEM, key PEM).

    ``hosts`` become the subject alternative names (DNS names or IP addresses);
    ``not_before``/``not_after`` let tests make expired certificates.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    issuer_cert = x509.load_pem_x509_certificate(ca_cert)
    issuer_key = serialization.load_pem_private_key(ca_key, password=None)
    key = _new_key()
    now = dt.datetime.now(dt.timezone.utc)
    not_before = not_before or now - dt.timedelta(minutes=5)
    not_after = not_after or now + dt.timedelta(days=_VALID_DAYS)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder()
               .subject_name(_name(hosts[0] if hosts else "lootlab client"))
               .issuer_name(issuer_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _pem_cert(builder.sign(issuer_key, hashes.SHA256())), _pem_key(key)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_tls_files(directory: Path, *, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> TLSFiles:
    """Make a fresh CA, server and client certificate in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = _files(directory)
    ca_cert, ca_key = make_ca()
    cert, key = make_cert(ca_cert, ca_key, hosts=hosts)
    client_cert, client_key = make_cert(ca_cert, ca_key, hosts=("lootlab-client",), client=True)
    _write(files.ca_key, ca_key, private=True)
    _write(files.cert, cert)
    _write(files.key, key, private=True)
    _write(files.client_cert, client_cert)
    _write(files.client_key, client_key, private=True)
    _write(files.ca, ca_cert)   # last: its presence means the set is complete
    return files


def _files(directory: Path) -> TLSFiles:
    return TLSFiles(ca=directory / "ca.pem", ca_key=directory / "ca-key.pem",
                    cert=directory / "server.pem", key=directory / "server-key.pem",
                    client_cert=directory / "client.pem", client_key=directory / "client-key.pem")


def _usable(files: TLSFiles) -> bool:
    if not all(Path(p).is_file() for p in vars(files).values()):
        return False
    from cryptography import x509
    try:
        cert = x509.load_pem_x509_certificate(files.read("cert"))
    except ValueError:
        return False
    return cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)


def ensure_dev_tls(directory: Path | None = None) -> TLSFiles:
    """The development CA and certificates, made once (process-safe) and renewed near expiry."""
    directory = directory or tls_dir()
    files = _files(directory)
    if _usable(files):
        return files
    with data_lock(".tls.lock"):
        if not _usable(files):
            write_tls_files(directory)
    return files
