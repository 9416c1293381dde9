# paho-mqtt's Properties with its lookup tables built once, not for every packet received.
"""paho 2.2 decodes every MQTT 5 PUBLISH and PUBACK into a fresh `Properties`, and its
constructor builds three tables (27 property names, their types and packet kinds) before
`unpack` walks all 27 names to clear them: about half of what receiving a message costs
(bench/bench_uplink.py; 25 -> 14 us per PUBLISH in isolation). The tables are constants
that paho only ever reads, so `FastProperties` shares one copy of them; everything else is
paho's own code. `install()` puts it where paho's packet decoder looks it up.

paho-mqtt is pinned to 2.2.x for this (pyproject.toml); tests/test_paho_speedup.py checks
that packets decode exactly as with paho's own class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import paho.mqtt._packet as _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_OWN: Final = frozenset({"packetType", "types", "names", "properties"})
_PAHOS: Final = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_TABLES: Final = (_PAHOS.types, _PAHOS.names, _PAHOS.properties)


class FastProperties(Properties):
    """paho's Properties; the constant tables are shared instead of built per instance."""

    def __init__(self, packetType: int) -> None:
        own: dict[str, Any] = self.__dict__
        own["packetType"] = packetType
        own["types"], own["names"], own["properties"] = _TABLES

    def clear(self) -> None:
        """Forget every property set (what paho's clear does, without trying all 27 names)."""
        for name in [k for k in self.__dict__ if k not in _OWN]:
            delattr(self, name)


def install() -> None:
    """Make paho's packet decoder build FastProperties (idempotent; process-wide)."""
    _packet.Properties = FastProperties  # type: ignore[attr-defined]


@contextmanager
def stock() -> Iterator[None]:
    """paho as released inside the block (for comparisons), the speed-up again after it."""
    _packet.Properties = Properties  # type: ignore[attr-defined]
    try:
        yield
    finally:
        install()
