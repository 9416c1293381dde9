# The shipped ACL on a real mosquitto: each terminal is pinned to its own topics and its store.
from __future__ import annotations

import json

import paho.mqtt.client as mqtt
import pytest

from tests.relay.conftest import MqttFactory, Pki, Probe
from tillbox import certs, contract
from tillbox.devbroker import DevBroker

NOT_AUTHORIZED = 0x87
NO_MATCHING_SUBSCRIBERS = 0x10
EVENTS_SHARE = "$share/relay/tillbox/v1/+/+/events"
RESYNC_SHARE = "$share/relay/tillbox/v1/+/+/resync"


def relay(mqtt_clients: MqttFactory, pki: Pki, client_id: str = "relay-a") -> Probe:
    probe = mqtt_clients.connect(pki.relay(), client_id)
    assert probe.subscribe(EVENTS_SHARE).value == 1
    assert probe.subscribe(RESYNC_SHARE).value == 1
    return probe


def terminal(mqtt_clients: MqttFactory, pki: Pki, store: str, term: str) -> Probe:
    return mqtt_clients.connect(pki.terminal(store, term), f"till-{store}-{term}")


def test_terminal_publishes_its_own_topics(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    r = relay(mqtt_clients, pki)
    op = mqtt_clients.connect(pki.operator(), "fleet")
    op.subscribe("tillbox/v1/+/+/status")
    op.subscribe("tillbox/v1/+/+/cmd-result")
    t1 = terminal(mqtt_clients, pki, "s1", "t1")

    own = [
        (contract.events_topic("s1", "t1"), r),
        ("tillbox/v1/s1/t1/resync", r),
        (contract.status_topic("s1", "t1"), op),
        (contract.cmd_result_topic("s1", "t1"), op),
    ]
    for topic, receiver in own:
        assert t1.publish(topic, b'{"n": 1}').value == 0, topic
        msg = receiver.next_message()
        assert (msg.topic, msg.payload) == (topic, b'{"n": 1}')


@pytest.mark.parametrize(
    "topic",
    [
        "tillbox/v1/s1/t2/events",  # another terminal, same store
        "tillbox/v1/s2/t1/events",  # same terminal id, another store
        "tillbox/v1/s1/t2/status",
        "tillbox/v1/s1/t2/cmd-result",
        "tillbox/v1/s2/t1/resync",
        "tillbox/v1/s1/t1/ack",  # acks come only from the relay
        "tillbox/v1/s1/t1/cmd/reboot",  # commands come only from the fleet
        "tillbox/v1/s1/catalog/items",  # down-sync comes only from the relay
        "tillbox/v1/s1/stock/ITEM-1",
        "tillbox/v1/s1/customers/c-1",
        "tillbox/v1/s1/t1/events/extra",
        "tillbox/v1/s1/t1",
        "tillbox/v1/s1/t1/t2/events",
        "tillbox/v1/s1",
        "other/s1/t1/events",
    ],
)
def test_terminal_cannot_publish_anywhere_else(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory, topic: str
) -> None:
    t1 = terminal(mqtt_clients, pki, "s1", "t1")
    assert t1.publish(topic).value == NOT_AUTHORIZED


def test_denied_events_never_reach_the_relay(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    r = relay(mqtt_clients, pki)
    t1 = terminal(mqtt_clients, pki, "s1", "t1")
    assert t1.publish("tillbox/v1/s1/t2/events", b"forged").value == NOT_AUTHORIZED
    assert t1.publish("tillbox/v1/s1/t1/events", b"real").value == 0
    assert r.next_message().payload == b"real"
    assert r.silent()


def test_identity_is_the_certificate_not_the_client_id_or_username(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    probe = mqtt_clients.probe(broker.settings(pki.terminal("s1", "t1")), "s1/t2")
    probe.client.username_pw_set("s1/t2", "whatever")
    rc = probe.connect()
    assert rc is not None and not rc.is_failure
    assert probe.publish("tillbox/v1/s1/t2/events").value == NOT_AUTHORIZED
    assert probe.publish("tillbox/v1/s1/t1/events").value in (0, NO_MATCHING_SUBSCRIBERS)


def test_mqtt_311_reports_a_denied_publish_as_success(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    """Why the project speaks MQTT 5: 3.1.1 has no reason code, so a denial looks like a PUBACK."""
    r = relay(mqtt_clients, pki)
    old = mqtt_clients.connect(pki.terminal("s1", "t1"), "old-till", protocol=mqtt.MQTTv311)
    assert not old.publish("tillbox/v1/s1/t2/events", b"forged").is_failure
    assert r.silent()


def test_terminal_reads_only_its_own_acks_and_commands(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    r = relay(mqtt_clients, pki)
    op = mqtt_clients.connect(pki.operator(), "fleet")
    t1 = terminal(mqtt_clients, pki, "s1", "t1")
    t2 = terminal(mqtt_clients, pki, "s1", "t2")
    for probe, term in ((t1, "t1"), (t2, "t2")):
        probe.subscribe(contract.ack_topic("s1", term))
        probe.subscribe(f"tillbox/v1/s1/{term}/cmd/#")
    # t1 also tries to listen in on t2 and on everybody. Mosquitto 2.0 grants the SUBACK and
    # checks read access per message on delivery; a later version may refuse with 0x87.
    for spy in ("tillbox/v1/s1/t2/ack", "tillbox/v1/s1/t2/cmd/#", "tillbox/v1/+/+/events", "#"):
        assert t1.subscribe(spy).value in (1, NOT_AUTHORIZED)

    assert r.publish(contract.ack_topic("s1", "t1"), b'{"upto": 1}').value == 0
    assert r.publish(contract.ack_topic("s1", "t2"), b'{"upto": 2}').value == 0
    assert op.publish(contract.cmd_topic("s1", "t2", "reboot"), b'{"id": "c2"}').value == 0
    assert op.publish(contract.cmd_topic("s1", "t1", "reboot"), b'{"id": "c1"}').value == 0
    assert t2.publish(contract.events_topic("s1", "t2"), b"sale").value == 0

    # Overlapping subscriptions ("#" and the exact topic) may each deliver t1's own
    # messages, so compare what arrived, not how often.
    assert {(m.topic, m.payload) for m in drain(t1)} == {
        ("tillbox/v1/s1/t1/ack", b'{"upto": 1}'),
        ("tillbox/v1/s1/t1/cmd/reboot", b'{"id": "c1"}'),
    }
    assert [(m.topic, m.payload) for m in t2.messages(2)] == [
        ("tillbox/v1/s1/t2/ack", b'{"upto": 2}'),
        ("tillbox/v1/s1/t2/cmd/reboot", b'{"id": "c2"}'),
    ]
    assert r.next_message().payload == b"sale"


def test_terminal_reads_its_own_stores_down_sync_only(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    r = relay(mqtt_clients, pki)
    for store in ("s1", "s2"):
        for kind in ("catalog", "stock", "customers"):
            topic = f"tillbox/v1/{store}/{kind}/snapshot"
            payload = json.dumps({"store": store, "kind": kind}).encode()
            assert r.publish(topic, payload, retain=True).value in (0, NO_MATCHING_SUBSCRIBERS)

    s1t1 = terminal(mqtt_clients, pki, "s1", "t1")
    s2t1 = terminal(mqtt_clients, pki, "s2", "t1")
    for probe in (s1t1, s2t1):
        probe.subscribe("tillbox/v1/+/catalog/#")
        probe.subscribe("tillbox/v1/+/stock/#")
        probe.subscribe("tillbox/v1/+/customers/#")
    for probe, store in ((s1t1, "s1"), (s2t1, "s2")):
        got = sorted(m.topic for m in probe.messages(3))
        assert got == [
            f"tillbox/v1/{store}/{k}/snapshot" for k in ("catalog", "customers", "stock")
        ]
        assert probe.silent()

    assert r.publish("tillbox/v1/s1/stock/ITEM-1", b'{"on_hand": 4}').value == 0
    assert s1t1.next_message().topic == "tillbox/v1/s1/stock/ITEM-1"
    assert s2t1.silent()


def test_a_terminal_issued_later_reads_down_sync_after_reload(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    r = relay(mqtt_clients, pki)
    assert r.publish("tillbox/v1/s1/catalog/snapshot", b"v7", retain=True).value in (0, 0x10)
    t3 = terminal(mqtt_clients, pki, "s1", "t3")  # certificate issued after the broker started
    t3.subscribe("tillbox/v1/s1/catalog/#")
    assert t3.silent(), "down-sync reached a terminal the ACL does not list yet"
    assert t3.publish(contract.events_topic("s1", "t3"), b"sale").value == 0  # patterns cover it
    assert r.next_message().topic == "tillbox/v1/s1/t3/events"

    broker.reload()
    assert "user s1/t3" in broker.acl_path.read_text()
    t3.subscribe("tillbox/v1/s1/catalog/#")  # subscribing again sends the retained snapshot
    assert t3.next_message().payload == b"v7"


def test_relays_share_the_events_of_every_terminal(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    relays = [relay(mqtt_clients, pki, "relay-a"), relay(mqtt_clients, pki, "relay-b")]
    tills = [
        terminal(mqtt_clients, pki, s, t) for s, t in (("s1", "t1"), ("s1", "t2"), ("s2", "t1"))
    ]
    sent = set()
    for n in range(10):
        for till in tills:
            store, term = till.client_id.split("-")[1:]
            payload = f"{store}/{term}/{n}".encode()
            assert till.publish(contract.events_topic(store, term), payload).value == 0
            sent.add(payload)
    received = {r.client_id: [m.payload for m in drain(r)] for r in relays}
    everything = [p for got in received.values() for p in got]
    assert sorted(everything) == sorted(sent), "each event exactly once across the group"
    assert all(received.values()), (
        f"one relay got nothing: { {k: len(v) for k, v in received.items()} }"
    )


def test_relay_and_operator_cannot_pose_as_a_terminal(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    r = mqtt_clients.connect(pki.relay(), "relay-a")
    op = mqtt_clients.connect(pki.operator(), "fleet")
    for probe in (r, op):
        assert probe.publish(contract.events_topic("s1", "t1")).value == NOT_AUTHORIZED
        assert probe.publish(contract.status_topic("s1", "t1")).value == NOT_AUTHORIZED
    assert op.publish(contract.ack_topic("s1", "t1")).value == NOT_AUTHORIZED
    assert op.publish("tillbox/v1/s1/catalog/snapshot").value == NOT_AUTHORIZED
    assert r.publish(contract.cmd_topic("s1", "t1", "reboot")).value == NOT_AUTHORIZED


def test_a_second_relay_identity_gets_the_relay_rules(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    blue = pki.relay("relay-blue")
    broker.reload()
    r = mqtt_clients.connect(blue, "relay-blue-1")
    r.subscribe(EVENTS_SHARE)
    t1 = terminal(mqtt_clients, pki, "s1", "t1")
    assert t1.publish(contract.events_topic("s1", "t1"), b"sale").value == 0
    assert r.next_message().payload == b"sale"
    assert r.publish(contract.ack_topic("s1", "t1")).value in (0, NO_MATCHING_SUBSCRIBERS)


def test_reserved_terminal_ids_cannot_be_issued(pki: Pki) -> None:
    with pytest.raises(certs.CertError, match="reserved"):
        pki.terminal("s1", "catalog")


def drain(probe: Probe, quiet: float = 0.5) -> list[mqtt.MQTTMessage]:
    got: list[mqtt.MQTTMessage] = []
    while not probe.silent(quiet):
        got.append(probe.next_message())
    return got
