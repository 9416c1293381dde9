# The development CA and `tillbox certs`: files, permissions, names, and docs that match the kit.
from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tillbox import certs
from tillbox.cli import main
from tillbox.devbroker import SHIPPED_DIR, acl_for

DOCS = Path(__file__).resolve().parents[2] / "docs"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_cli_builds_a_ca_and_every_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    assert main(["certs", "init", "--dir", str(ca)]) == 0
    assert main(["certs", "terminal", "--dir", str(ca), "--store", "s1", "--terminal", "t1"]) == 0
    assert main(["certs", "relay", "--dir", str(ca)]) == 0
    assert main(["certs", "operator", "--dir", str(ca)]) == 0
    out = capsys.readouterr().out
    assert "terminal 's1/t1'" in out and "relay 'relay'" in out and "operator 'operator'" in out

    assert mode(ca) == 0o700
    keys = sorted(ca.rglob("*.key"))
    assert [k.relative_to(ca).as_posix() for k in keys] == [
        "ca.key",
        "operators/operator.key",
        "relays/relay.key",
        "server.key",
        "terminals/s1/t1.key",
    ]
    assert {mode(k) for k in keys} == {0o600}
    assert not list(ca.rglob("*.tmp"))


def test_terminal_certificate_carries_the_acl_name(tmp_path: Path) -> None:
    certs.init_ca(tmp_path)
    ident = certs.issue_terminal(tmp_path, "s1", "t1")
    cert = load(ident.cert)
    assert certs.common_name(cert) == "s1/t1"
    assert (
        cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "terminal"
    )
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = load(certs.ca_files(tmp_path).cert)
    cert.verify_directly_issued_by(ca)
    assert certs.issued_terminals(tmp_path) == [("s1", "t1")]


def test_server_certificate_names_loopback_for_tls_servers(tmp_path: Path) -> None:
    _, server = certs.init_ca(tmp_path)
    cert = load(server.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_init_refuses_to_replace_a_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    certs.init_ca(tmp_path)
    before = certs.ca_files(tmp_path).cert.read_bytes()
    assert main(["certs", "init", "--dir", str(tmp_path)]) == 2
    assert "already holds a CA" in capsys.readouterr().err
    assert certs.ca_files(tmp_path).cert.read_bytes() == before


def test_issuing_needs_a_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "relay", "--dir", str(tmp_path)]) == 2
    assert "tillbox certs init" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("store", "terminal", "why"),
    [
        ("s1/x", "t1", "not valid"),  # would add a topic level to %u
        ("s1", "t+", "not valid"),
        ("s1", "#", "not valid"),
        ("", "t1", "not valid"),
        ("s1", "catalog", "reserved"),
        ("s1", "stock", "reserved"),
        ("s1", "customers", "reserved"),
    ],
)
def test_terminal_names_that_would_break_the_acl_are_refused(
    tmp_path: Path, store: str, terminal: str, why: str
) -> None:
    certs.init_ca(tmp_path)
    with pytest.raises(certs.CertError, match=why):
        certs.issue_terminal(tmp_path, store, terminal)


def test_service_names_cannot_take_a_terminal_shape_or_the_other_role(tmp_path: Path) -> None:
    certs.init_ca(tmp_path)
    with pytest.raises(certs.CertError, match="not valid"):
        certs.issue_relay(tmp_path, "s1/t1")
    with pytest.raises(certs.CertError, match="operator's identity"):
        certs.issue_relay(tmp_path, "operator")
    with pytest.raises(certs.CertError, match="relay's identity"):
        certs.issue_operator(tmp_path, "relay")


def test_acl_command_adds_one_block_per_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs.init_ca(tmp_path)
    certs.issue_terminal(tmp_path, "s1", "t1")
    certs.issue_terminal(tmp_path, "s2", "t9")
    assert main(["certs", "acl", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith((SHIPPED_DIR / "acl").read_text().rstrip("\n"))
    assert "user s1/t1\ntopic read tillbox/v1/s1/catalog/#\n" in out
    assert "user s2/t9\ntopic read tillbox/v1/s2/catalog/#\n" in out
    assert out == acl_for(tmp_path)


def test_docs_show_every_shipped_access_rule() -> None:
    doc = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    rules = [
        line.strip()
        for line in (SHIPPED_DIR / "acl").read_text().splitlines()
        if re.match(r"(pattern|topic|user) ", line.strip())
    ]
    missing = [rule for rule in rules if rule not in doc]
    assert not missing, f"docs/mqtt.md does not show: {missing}"


def test_docs_explain_every_tuned_broker_setting() -> None:
    doc = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    tuned = (
        "require_certificate",
        "use_identity_as_username",
        "autosave_interval",
        "autosave_on_changes",
        "max_queued_messages",
        "max_inflight_messages",
        "persistent_client_expiration",
        "allow_anonymous",
    )
    conf = (SHIPPED_DIR / "mosquitto.conf").read_text()
    for key in tuned:
        assert re.search(rf"^{key} ", conf, re.M), f"mosquitto.conf lost {key}"
        assert f"`{key}" in doc, f"docs/mqtt.md does not explain {key}"
    assert (DOCS / "certificates.md").exists()
