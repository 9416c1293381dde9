# paho's packet decoder with FastProperties decodes exactly as with paho's own Properties.
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt._packet as _packet
import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tillbox.paho_speedup import FastProperties, stock

V5 = MQTTProtocolVersion.MQTTv5


def _props(kind: int, **values: Any) -> bytes:
    props = Properties(kind)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return bytes(props.pack())  # type: ignore[no-untyped-call]


PUBLISH_PROPS = _props(
    PacketTypes.PUBLISH,
    MessageExpiryInterval=60,
    ContentType="application/json",
    CorrelationData=b"\x00\x01",
    UserProperty=[("a", "1"), ("b", "2")],
    SubscriptionIdentifier=7,
)
PUBACK_PROPS = _props(PacketTypes.PUBACK, ReasonString="quota", UserProperty=[("k", "v")])


def _publish(props: bytes) -> bytes:
    topic = b"tillbox/v1/s1/t1/events"
    return len(topic).to_bytes(2, "big") + topic + (42).to_bytes(2, "big") + props + b"{}"


CASES: list[tuple[str, Callable[[], Any]]] = [
    ("publish", lambda: _packet.decode_publish(0x32, _publish(PUBLISH_PROPS), V5).properties),
    ("publish, none", lambda: _packet.decode_publish(0x32, _publish(b"\x00"), V5).properties),
    ("puback", lambda: _packet.decode_puback(0x40, b"\x00\x2a\x97" + PUBACK_PROPS, V5).properties),
]


def _seen(props: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(props).items() if k not in ("types", "names", "properties")}


@pytest.mark.parametrize(("name", "decode"), CASES, ids=[c[0] for c in CASES])
def test_packets_decode_as_with_pahos_own_properties(name: str, decode: Callable[[], Any]) -> None:
    with stock():
        want = decode()
    assert type(want) is Properties
    got = decode()
    assert type(got) is FastProperties
    assert _seen(got) == _seen(want) and str(got) == str(want)
    assert got.json() == want.json()


def test_instances_share_only_the_constant_tables() -> None:
    a = FastProperties(PacketTypes.PUBLISH)
    b = FastProperties(PacketTypes.PUBACK)
    a.ContentType = "text/plain"
    assert not hasattr(b, "ContentType") and a.names is b.names
    assert b.isEmpty() and not a.isEmpty()
    a.clear()
    assert not hasattr(a, "ContentType") and a.isEmpty() and a.packetType == PacketTypes.PUBLISH
    with pytest.raises(Exception, match="does not apply"):
        b.ContentType = "x"  # paho's own checks still apply
