# purpose: a bad network between till and broker (cut, resets, black hole) loses nothing.
"""The till reaches the broker through `tests.e2e.proxy.TcpProxy`; the relay reaches it
directly. Sales go on throughout; at the end the relay must hold the journal exactly once.

- cut: every connection reset and reconnects refused for a while (a pulled cable, a router
  reboot);
- resets: connections dropped again and again in the middle of draining a backlog;
- stall: connections stay open but nothing moves (a black-holing NAT or Wi-Fi): only MQTT
  keepalives notice, on both sides, and the till's reconnects hang until the link is back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.conftest import EVENTS_PER_SALE, Seller, Shop, Terminal, wait_for
from tests.e2e.proxy import TcpProxy


@contextmanager
def selling_through(shop: Shop) -> Iterator[tuple[TcpProxy, Terminal, Seller]]:
    """A till online through a proxy, selling; the block makes the outage. Then the link is
    back, eight more sales, and every event must be at the relay exactly once."""
    shop.relay()
    proxy = shop.proxy()
    till = shop.terminal(via=proxy)  # keepalive 5 s
    wait_for("the till online", lambda: till.uplink()["connected"])
    seller = Seller(till)
    seller.start()
    try:
        seller.wait_sales(8)
        yield proxy, till, seller
        proxy.resume()
        seller.wait_sales(8)
    finally:
        seller.finish()
    shop.wait_drained(till, timeout=90)
    shop.check(till)


def cut_for(shop: Shop, outage_sales: int) -> None:
    with selling_through(shop) as (proxy, till, seller):
        accepted = proxy.accepted
        proxy.cut()
        wait_for("the till to notice", lambda: not till.uplink()["connected"])
        seller.wait_sales(outage_sales)
        wait_for("a refused reconnect", lambda: proxy.accepted > accepted)
        assert till.uplink()["outbox_depth"] >= outage_sales * EVENTS_PER_SALE


def test_network_cut_during_sales_then_back(shop: Shop) -> None:
    cut_for(shop, outage_sales=40)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_network_long_cut_soak(shop: Shop) -> None:
    """Soak sibling of the test above: a cut lasting hundreds of sales."""
    cut_for(shop, outage_sales=800)


def resets_while_draining(shop: Shop, backlog: int, resets: int, seed: int) -> None:
    rng = random.Random(seed)
    shop.relay()
    proxy = shop.proxy()
    # unacked_max = window: what was sent before a reset still reaches the relay, and a
    # larger allowance lets the whole backlog drain before the resets are done.
    till = shop.terminal(via=proxy, backlog=backlog, unacked_max=100)
    head = till.health()["journal"]["seq"]
    for done in range(resets):
        # each reset cuts a live session that is draining: the till is back online since the
        # last reset and the relay has stored more of its backlog through this session
        wait_for(
            "the till back online",
            lambda done=done: (u := till.uplink())["state"] == "online" and u["reconnects"] >= done,
            timeout=60,
        )
        shop.wait_relay_past(till, shop.relay_head(till) + rng.randint(1, 40), timeout=60)
        proxy.drop()
    assert shop.relay_head(till) < head, "the drain ended before the last reset; grow the backlog"
    shop.wait_drained(till, timeout=120)
    journal = shop.check(till)
    assert len(journal) == head
    assert till.uplink()["reconnects"] >= resets


def test_connections_reset_again_and_again_while_draining(shop: Shop) -> None:
    resets_while_draining(shop, backlog=1500, resets=5, seed=1)


def stall_for(shop: Shop, outage_sales: int) -> None:
    with selling_through(shop) as (proxy, till, seller):
        proxy.stall()
        # Nothing comes back, so paho pings after one keepalive and gives up after another.
        wait_for("the till to notice the dead link", lambda: not till.uplink()["connected"], 30)
        accepted = proxy.accepted
        seller.wait_sales(outage_sales)
        # Its next attempt is accepted by the stalled link and never answered.
        wait_for("a reconnect held by the stalled link", lambda: proxy.accepted > accepted)
        assert not till.uplink()["connected"]


def test_network_stall_past_the_keepalive(shop: Shop) -> None:
    stall_for(shop, outage_sales=10)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_network_long_stall_soak(shop: Shop) -> None:
    """Soak sibling of the test above: the link black-holes for hundreds of sales."""
    stall_for(shop, outage_sales=800)
