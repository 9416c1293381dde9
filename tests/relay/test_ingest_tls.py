# End to end on the shipped TLS broker with its ACL: events stored and acked, down-sync read.
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from relay.config import BrokerConfig, DatabaseConfig, IngestConfig, RelayConfig
from relay.ingest import Relay
from relay.mqtt import _Client
from tests.relay.conftest import MqttFactory, Pki
from tests.relay.plainbroker import TIMEOUT, chain, encode
from tillbox.contract import ack_topic, events_topic
from tillbox.devbroker import DevBroker


@pytest.fixture
def relay(broker: DevBroker, pki: Pki, tmp_path: Path) -> Iterator[Relay]:
    me = pki.relay()
    config = RelayConfig(
        broker=BrokerConfig(
            host=broker.host,
            port=broker.port,
            client_id="relay-tls",
            ca_file=broker.ca_file,
            cert_file=me.cert,
            key_file=me.key,
        ),
        database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'relay.sqlite'}"),
        ingest=IngestConfig(max_batch_delay_ms=5),
    )
    r = Relay(config)
    assert r.store.set_stock("s1", {"BK-0001": "7"}) is not None
    r.start()
    assert r.link.subscribed.wait(TIMEOUT), "the relay could not subscribe over TLS"
    yield r
    r.stop()
    r.store.close()


def test_terminal_over_tls_is_stored_acked_and_gets_its_down_sync(
    relay: Relay, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    till = mqtt_clients.connect(pki.terminal("s1", "t1"), "till-s1-t1")
    assert not till.subscribe(ack_topic("s1", "t1")).is_failure
    assert not till.subscribe("tillbox/v1/s1/stock/snapshot").is_failure
    envs = chain("s1", "t1", 5)
    for env in envs:
        assert not till.publish(events_topic("s1", "t1"), encode(env)).is_failure
    acks: list[int] = []
    snapshots: list[dict[str, object]] = []
    while max(acks, default=0) < 5:
        msg = till.next_message()
        if msg.topic == ack_topic("s1", "t1"):
            acks.append(json.loads(msg.payload)["upto"])
        else:
            snapshots.append(json.loads(msg.payload))
    assert relay.store.events_of("s1", "t1") == envs
    if not snapshots:
        snapshots.append(json.loads(till.next_message().payload))
    assert snapshots[-1] == {"schema": "tillbox.stock/1", "version": 1, "levels": {"BK-0001": "7"}}


def test_a_batch_of_pubacks_is_one_write_and_other_packets_keep_their_order() -> None:
    """The relay's client joins the PUBACKs of a group commit (relay/mqtt.py `_Client`); this
    pins the paho internals that leans on, so a paho upgrade that moves them fails here."""
    client = _Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
    writes: list[bytes] = []

    def send(buf: bytes | bytearray) -> int:
        writes.append(bytes(buf))
        return len(buf)

    client._sock_send = send  # type: ignore[method-assign]
    client.ack_all([1, 2, 300])
    client._send_pingreq()
    client.ack_all([4])
    assert client._packet_write() == MQTTErrorCode.MQTT_ERR_SUCCESS
    # MQTT 5 PUBACK: 0x40, length 2, the packet id; PINGREQ: 0xC0 0x00.
    assert writes == [
        b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\x01\x2c",
        b"\xc0\x00",
        b"\x40\x02\x00\x04",
    ]
