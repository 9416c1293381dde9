# The broker's TLS door: a certificate from our CA gets in; no certificate or a stranger's does not.
from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from tests.relay.conftest import MqttFactory, Pki
from tillbox import certs
from tillbox.devbroker import DevBroker, MqttSettings

# MQTT 5 CONNECT: protocol "MQTT", level 5, clean start, keepalive 30, no properties,
# client id "plain".
PLAIN_CONNECT = bytes.fromhex("101200044d5154540502001e000005") + b"plain"


def test_terminal_certificate_connects_with_its_cn_as_username(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    probe = mqtt_clients.connect(pki.terminal("s1", "t1"), "till-1")
    assert probe.client.is_connected()
    assert "as till-1 (p5, c1, k30, u's1/t1')" in broker.log_text()


def test_no_certificate_is_refused(broker: DevBroker, mqtt_clients: MqttFactory) -> None:
    assert mqtt_clients.attempt(broker.settings(None)) is None
    assert "peer did not return a certificate" in broker.log_text()


def test_certificate_from_another_ca_is_refused(
    broker: DevBroker, mqtt_clients: MqttFactory, tmp_path: Path
) -> None:
    rogue_ca = tmp_path / "rogue"
    certs.init_ca(rogue_ca)
    rogue = certs.issue_terminal(rogue_ca, "s1", "t1")  # same CN, wrong issuer
    assert mqtt_clients.attempt(broker.settings(rogue)) is None
    assert "certificate verify failed" in broker.log_text()


def test_plain_mqtt_without_tls_gets_no_connack(broker: DevBroker) -> None:
    with socket.create_connection((broker.host, broker.port), timeout=5) as s:
        s.sendall(PLAIN_CONNECT)
        try:
            answer = s.recv(64)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"\x20"), f"broker sent a CONNACK to plain TCP: {answer!r}"


def test_client_refuses_a_broker_it_cannot_verify(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other"
    certs.init_ca(other_ca)
    t1 = pki.terminal("s1", "t1")
    settings = MqttSettings(
        broker.host, broker.port, certs.ca_files(other_ca).cert, t1.cert, t1.key
    )
    probe = mqtt_clients.probe(settings)
    with pytest.raises(ssl.SSLCertVerificationError):
        probe.connect()


def test_server_certificate_names_loopback(broker: DevBroker) -> None:
    ctx = ssl.create_default_context(cafile=str(broker.ca_file))
    for name in ("127.0.0.1", "localhost"):
        with (
            socket.create_connection((broker.host, broker.port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
