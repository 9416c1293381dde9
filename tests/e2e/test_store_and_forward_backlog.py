# purpose: thousands of sales made offline drain to the real relay in order, each stored once.
"""A till that sold for a long time with the broker unreachable (its journal prefilled
in-process with real `Till` decisions and `Journal.append`, every event still in the
outbox) starts with the uplink on. An observer with its own subscription to the till's
events topic (not the relay's shared one) records what goes over the wire: every event must
first appear in seq order, and the relay must never have to put one aside behind a gap.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.e2e.conftest import EVENTS_PER_SALE, STORE, Shop, wait_for
from tillbox.contract import events_topic


class Observer:
    """A QoS 1 subscriber (the relay's certificate, its own client id) noting each seq."""

    def __init__(self, shop: Shop, terminal: str) -> None:
        self.seqs: list[int] = []
        self._subscribed = threading.Event()
        settings = shop.broker.settings(shop.pki.relay())
        self.client = settings.new_client(f"observer-{terminal}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect(settings.host, settings.port)
        self.client.loop_start()
        self.client.subscribe(events_topic(STORE, terminal), qos=1)
        assert self._subscribed.wait(10), "the observer could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.seqs.append(json.loads(msg.payload)["seq"])

    def first_arrivals(self) -> list[int]:
        """Each seq once, where it first came."""
        return list(dict.fromkeys(list(self.seqs)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def drain_backlog(shop: Shop, sales: int) -> None:
    relay = shop.relay()
    till = shop.terminal(backlog=sales, start=False)
    head = len(till.journal())
    assert head >= sales * EVENTS_PER_SALE
    assert till.outbox() == head  # nothing was ever sent
    observer = Observer(shop, "t1")
    try:
        till.start()
        shop.wait_drained(till, timeout=600)
        wait_for("the observer to see the last event", lambda: head in observer.seqs)
    finally:
        observer.close()
    assert observer.first_arrivals() == list(range(1, head + 1))
    counts = relay.stop()
    assert counts["pending"] == 0, counts  # the relay never waited behind a gap
    assert counts["stored"] == head, counts
    shop.check(till)


def test_an_offline_backlog_drains_in_order(shop: Shop) -> None:
    drain_backlog(shop, sales=2_000)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_an_offline_backlog_of_ten_thousand_sales_drains_in_order_soak(shop: Shop) -> None:
    """Soak sibling of the test above: 10,000 sales (40,002 events)."""
    drain_backlog(shop, sales=10_000)
