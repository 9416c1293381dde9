# Availability and durability on a real mosquitto: last will, persistent sessions, restarts.
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.relay.conftest import MqttFactory, Pki, Probe, Will
from tillbox import certs, contract
from tillbox.devbroker import DevBroker

OFFLINE = b'{"state":"offline"}'
ONLINE = b'{"state":"online"}'
HOUR = 3600

# A terminal in its own process: will on `will_topic`, retained "online" there, then waits
# to be killed. Killing the process is the closest thing to pulling the plug that still
# closes the socket at once (a real power cut is noticed after 1.5 x keepalive instead).
TERMINAL_PROCESS = """
import sys, time
from pathlib import Path
from tillbox.devbroker import MqttSettings
host, port, ca, cert, key, client_id, will_topic = sys.argv[1:]
client = MqttSettings(host, int(port), Path(ca), Path(cert), Path(key)).new_client(client_id)
client.will_set(will_topic, b'{"state":"offline"}', qos=1, retain=True)
client.connect(host, int(port), keepalive=30)
client.loop_start()
client.publish(will_topic, b'{"state":"online"}', qos=1, retain=True).wait_for_publish(10)
print("online", flush=True)
time.sleep(600)
"""


@contextmanager
def terminal_process(
    broker: DevBroker, ident: certs.Identity, will_topic: str
) -> Iterator[subprocess.Popen[str]]:
    s = broker.settings(ident)
    args = [s.host, str(s.port), str(s.ca_file), str(ident.cert), str(ident.key), "till-1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", TERMINAL_PROCESS, *args, will_topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "online"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_killed_terminal_is_marked_offline_by_its_retained_will(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    status = contract.status_topic("s1", "t1")
    watcher = mqtt_clients.connect(pki.operator(), "fleet")
    watcher.subscribe("tillbox/v1/+/+/status")
    with terminal_process(broker, pki.terminal("s1", "t1"), status) as proc:
        assert watcher.next_message().payload == ONLINE
        proc.kill()
        proc.wait()
        msg = watcher.next_message()
        assert (msg.topic, msg.payload) == (status, OFFLINE)

    late = mqtt_clients.connect(pki.relay(), "relay-late")
    late.subscribe(status)
    msg = late.next_message()
    assert (msg.payload, msg.retain) == (OFFLINE, True)


def test_a_will_on_another_terminals_topic_is_dropped(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    t2_status = contract.status_topic("s1", "t2")
    watcher = mqtt_clients.connect(pki.operator(), "fleet")
    watcher.subscribe(t2_status)
    with terminal_process(broker, pki.terminal("s1", "t1"), t2_status) as proc:
        proc.kill()
        proc.wait()
        assert watcher.silent(1.0), "t1's forged will (or online status) reached t2's topic"


def test_clean_disconnect_sends_no_will(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    status = contract.status_topic("s1", "t1")
    watcher = mqtt_clients.connect(pki.operator(), "fleet")
    watcher.subscribe(status)
    t1 = mqtt_clients.connect(pki.terminal("s1", "t1"), "till-1", will=Will(status, OFFLINE))
    t1.disconnect()
    assert watcher.silent(1.0)


def queue_an_ack_while_offline(
    broker: DevBroker,
    pki: Pki,
    mqtt_clients: MqttFactory,
    payload: bytes,
    clean_start: bool = False,
) -> None:
    till = mqtt_clients.connect(
        pki.terminal("s1", "t1"), "till-1", clean_start=clean_start, session_expiry=HOUR
    )
    assert till.subscribe(contract.ack_topic("s1", "t1")).value == 1
    till.disconnect()
    relay = mqtt_clients.connect(pki.relay(), "relay-a")
    # 0, not 0x10: the offline session is a matching subscriber and the message is queued.
    assert relay.publish(contract.ack_topic("s1", "t1"), payload).value == 0
    relay.disconnect()


def test_queued_message_for_an_offline_session_survives_a_restart(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    queue_an_ack_while_offline(broker, pki, mqtt_clients, b'{"upto": 42}')
    port = broker.port
    broker.restart(keep_persistence=True)  # SIGTERM: mosquitto writes mosquitto.db
    assert broker.port == port

    till = mqtt_clients.connect(
        pki.terminal("s1", "t1"), "till-1", clean_start=False, session_expiry=HOUR
    )
    msg = till.next_message()
    assert (msg.topic, msg.payload, msg.qos) == ("tillbox/v1/s1/t1/ack", b'{"upto": 42}', 1)


def test_without_the_persistence_file_the_queue_is_gone(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    """The control for the test above: what survives a restart survives in mosquitto.db."""
    queue_an_ack_while_offline(broker, pki, mqtt_clients, b'{"upto": 42}')
    broker.restart(keep_persistence=False)
    till = mqtt_clients.connect(
        pki.terminal("s1", "t1"), "till-1", clean_start=False, session_expiry=HOUR
    )
    assert till.silent(1.0)


def test_a_session_begun_with_clean_start_is_not_written_to_disk(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    """Mosquitto 2.0 saves only sessions whose latest CONNECT had clean start 0, whatever
    their session expiry: a client must always connect with clean_start=False."""
    queue_an_ack_while_offline(broker, pki, mqtt_clients, b'{"upto": 42}', clean_start=True)
    broker.restart(keep_persistence=True)
    till = mqtt_clients.connect(
        pki.terminal("s1", "t1"), "till-1", clean_start=False, session_expiry=HOUR
    )
    assert till.silent(1.0)


def test_more_than_a_thousand_queued_messages_are_all_kept(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    """Mosquitto's default max_queued_messages (1000) would drop the rest silently."""
    count = 1500
    till = mqtt_clients.connect(pki.terminal("s1", "t1"), "till-1", session_expiry=HOUR)
    till.subscribe(contract.ack_topic("s1", "t1"))
    till.disconnect()
    relay = mqtt_clients.connect(pki.relay(), "relay-a")
    infos = [
        relay.client.publish(contract.ack_topic("s1", "t1"), f'{{"upto": {n}}}', qos=1)
        for n in range(1, count + 1)
    ]
    for info in infos:
        info.wait_for_publish(10)

    till = mqtt_clients.connect(
        pki.terminal("s1", "t1"), "till-1", clean_start=False, session_expiry=HOUR
    )
    got = [m.payload for m in till.messages(count)]
    assert got == [f'{{"upto": {n}}}'.encode() for n in range(1, count + 1)]
    assert till.silent()


def test_retained_down_sync_survives_a_hard_kill_once_saved(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory
) -> None:
    relay = mqtt_clients.connect(pki.relay(), "relay-a")
    assert not broker.db_path.exists()
    for n in range(200):  # autosave counts seconds, not changes: no save per message
        relay.publish(f"tillbox/v1/s1/catalog/part-{n}", f"v{n}".encode(), retain=True)
    time.sleep(0.5)
    assert not broker.db_path.exists(), "a save per change: a growing queue would crawl"
    broker.save()  # what the 30-second autosave does (SIGUSR1)
    relay.disconnect()
    broker.kill()  # SIGKILL: no save on the way out
    broker.restart(keep_persistence=True)

    till = mqtt_clients.connect(pki.terminal("s1", "t1"), "till-1")
    till.subscribe("tillbox/v1/s1/catalog/#")
    got = sorted(m.payload for m in till.messages(200))
    assert got == sorted(f"v{n}".encode() for n in range(200))


@pytest.mark.parametrize(("session_expiry", "offline_share"), [(HOUR, 5), (0, 0)])
def test_an_offline_relay_keeps_its_share_only_with_a_session(
    broker: DevBroker, pki: Pki, mqtt_clients: MqttFactory, session_expiry: int, offline_share: int
) -> None:
    """Why relays use a short session expiry (docs/mqtt.md, "Sessions")."""
    share = "$share/relay/tillbox/v1/+/+/events"
    relays = [
        mqtt_clients.connect(pki.relay(), name, clean_start=False, session_expiry=session_expiry)
        for name in ("relay-a", "relay-b")
    ]
    for r in relays:
        r.subscribe(share)
    relays[1].disconnect()
    till = mqtt_clients.connect(pki.terminal("s1", "t1"), "till-1")
    for n in range(10):
        till.publish(contract.events_topic("s1", "t1"), str(n).encode())

    online = drain(relays[0])
    back = mqtt_clients.connect(
        pki.relay(), "relay-b", clean_start=False, session_expiry=session_expiry
    )
    held = drain(back)
    assert (len(online), len(held)) == (10 - offline_share, offline_share)


def drain(probe: Probe, quiet: float = 0.5) -> list[bytes]:
    got: list[bytes] = []
    while not probe.silent(quiet):
        got.append(bytes(probe.next_message().payload))
    return got


def test_stop_kill_and_restart_leave_no_process_behind(broker: DevBroker) -> None:
    first = broker.pid
    assert first is not None
    broker.kill()
    assert not broker.running and broker.pid is None
    assert not _alive(first)
    broker.restart()
    second = broker.pid
    assert second is not None and second != first
    broker.stop()
    assert not _alive(second)
    broker.start()  # the fixture stops it again


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
