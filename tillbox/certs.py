# Development CA: the broker's server certificate and one client certificate per identity.
"""A development certificate authority for the MQTT broker, built on `cryptography`.

Layout of a CA folder (keys are 0600, the folder 0700)::

    ca.crt ca.key                      the CA
    server.crt server.key              the broker, for 127.0.0.1 and localhost
    terminals/<store>/<terminal>.crt   CN "<store>/<terminal>", OU "terminal"
    relays/<name>.crt                  CN "<name>" (default "relay"), OU "relay"
    operators/<name>.crt               CN "<name>" (default "operator"), OU "operator"

The CN is what Mosquitto uses as the username (`use_identity_as_username`), so it is the
name the ACL pins topics to. Production does this differently: docs/certificates.md.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tillbox.contract import RESERVED_IDS, valid_id

Role = Literal["terminal", "relay", "operator"]

ORGANIZATION: Final = "Tillbox development"
# Terminal ids that would put a terminal's own topics inside its store's down-sync tree
# (tillbox/v1/s1/catalog/events is under tillbox/v1/s1/catalog/#).
DEFAULT_SERVER_HOSTS: Final = ("127.0.0.1", "localhost")
CA_DAYS: Final = 5 * 365
SERVER_DAYS: Final = 2 * 365
CLIENT_DAYS: Final = 2 * 365
_BACKDATE: Final = dt.timedelta(minutes=5)


class CertError(Exception):
    """The CA folder or a requested identity cannot be used; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A certificate and its key on disk, and the broker username (CN) it stands for."""

    name: str
    role: Role | Literal["server", "ca"]
    cert: Path
    key: Path


def terminal_name(store: str, terminal: str) -> str:
    """The CN of a terminal: `<store>/<terminal>`, which %u expands to in the ACL."""
    if terminal in RESERVED_IDS:
        raise CertError(
            f"terminal id {terminal!r} is reserved (it would collide with the store's "
            f"tillbox/v1/{store}/{terminal}/# down-sync topics); pick another id"
        )
    for what, value in (("store", store), ("terminal", terminal)):
        if not valid_id(value):
            raise CertError(
                f"{what} id {value!r} is not valid: use 1-32 letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
    return f"{store}/{terminal}"


def _service_name(name: str, role: Role) -> str:
    if not valid_id(name):
        raise CertError(
            f"{role} name {name!r} is not valid: use 1-32 letters, digits, '-' or '_' "
            "(no '/': that shape is reserved for terminals)"
        )
    other = "operator" if role == "relay" else "relay"
    if name == other:
        raise CertError(f"{name!r} is the {other}'s identity; a {role} needs another name")
    return name


def ca_files(folder: Path) -> Identity:
    return Identity("Tillbox development CA", "ca", folder / "ca.crt", folder / "ca.key")


def server_files(folder: Path) -> Identity:
    return Identity("server", "server", folder / "server.crt", folder / "server.key")


def terminal_files(folder: Path, store: str, terminal: str) -> Identity:
    name = terminal_name(store, terminal)
    base = folder / "terminals" / store / terminal
    return Identity(name, "terminal", base.with_suffix(".crt"), base.with_suffix(".key"))


def relay_files(folder: Path, name: str = "relay") -> Identity:
    base = folder / "relays" / _service_name(name, "relay")
    return Identity(name, "relay", base.with_suffix(".crt"), base.with_suffix(".key"))


def operator_files(folder: Path, name: str = "operator") -> Identity:
    base = folder / "operators" / _service_name(name, "operator")
    return Identity(name, "operator", base.with_suffix(".crt"), base.with_suffix(".key"))


def init_ca(folder: Path, hosts: Sequence[str] = DEFAULT_SERVER_HOSTS) -> tuple[Identity, Identity]:
    """Create the CA and the broker's server certificate; refuse to overwrite a CA."""
    ca = ca_files(folder)
    if ca.key.exists() or ca.cert.exists():
        raise CertError(
            f"{folder} already holds a CA ({ca.cert.name}); use it, or remove the folder "
            "to start over (every certificate it issued stops working)"
        )
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, ca.name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(ca.key, key)
    _write_cert(ca.cert, cert)
    return ca, issue_server(folder, hosts)


def issue_server(folder: Path, hosts: Sequence[str] = DEFAULT_SERVER_HOSTS) -> Identity:
    """(Re)issue the broker's certificate for the given IP addresses and DNS names."""
    if not hosts:
        raise CertError("the server certificate needs at least one host name or IP address")
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    ident = server_files(folder)
    _issue(folder, ident, hosts[0], "server", ExtendedKeyUsageOID.SERVER_AUTH, SERVER_DAYS, sans)
    return ident


def issue_terminal(folder: Path, store: str, terminal: str) -> Identity:
    """Issue (or reissue) the client certificate of terminal `terminal` in store `store`."""
    ident = terminal_files(folder, store, terminal)
    _issue(folder, ident, ident.name, "terminal", ExtendedKeyUsageOID.CLIENT_AUTH, CLIENT_DAYS)
    return ident


def issue_relay(folder: Path, name: str = "relay") -> Identity:
    ident = relay_files(folder, name)
    _issue(folder, ident, ident.name, "relay", ExtendedKeyUsageOID.CLIENT_AUTH, CLIENT_DAYS)
    return ident


def issue_operator(folder: Path, name: str = "operator") -> Identity:
    ident = operator_files(folder, name)
    _issue(folder, ident, ident.name, "operator", ExtendedKeyUsageOID.CLIENT_AUTH, CLIENT_DAYS)
    return ident


def issued(folder: Path, role: Role) -> list[Identity]:
    """The client identities of one role issued in `folder`, read back from their certificates."""
    sub = {"terminal": "terminals", "relay": "relays", "operator": "operators"}[role]
    found: list[Identity] = []
    for cert_path in sorted((folder / sub).rglob("*.crt")):
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        if not units or units[0].value != role:
            continue
        found.append(Identity(common_name(cert), role, cert_path, cert_path.with_suffix(".key")))
    return found


def issued_terminals(folder: Path) -> list[tuple[str, str]]:
    """(store, terminal) of every terminal certificate issued in `folder`."""
    pairs: list[tuple[str, str]] = []
    for ident in issued(folder, "terminal"):
        store, _, terminal = ident.name.partition("/")
        pairs.append((store, terminal))
    return pairs


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else ""
    return value if isinstance(value, str) else value.decode()


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = ca_files(folder)
    if not ca.key.exists() or not ca.cert.exists():
        raise CertError(f"{folder} holds no CA: run `tillbox certs init --dir {folder}` first")
    key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError(f"{ca.key}: not a key this tool made (expected an EC key)")
    return x509.load_pem_x509_certificate(ca.cert.read_bytes()), key


def _issue(
    folder: Path,
    ident: Identity,
    common: str,
    unit: str,
    usage: x509.ObjectIdentifier,
    days: int,
    sans: Iterable[x509.GeneralName] = (),
) -> None:
    ca_cert, ca_key = _load_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    alt_names = list(sans)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    for parent in reversed(ident.cert.relative_to(folder).parents):
        (folder / parent).mkdir(exist_ok=True, mode=0o700)
    _write_key(ident.key, key)
    _write_cert(ident.cert, cert)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a key so it is never readable by others, not even for a moment."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)  # the umask may have narrowed it further; make it exact
    tmp.replace(path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp.chmod(0o644)
    tmp.replace(path)
