# purpose: kill -9 of the real till or relay mid-drain, two relays at once: nothing lost or doubled.
"""Power cuts and crashes, on the real processes, while a backlog drains.

- The till (`tillbox terminal`) is SIGKILLed again and again at random points of the drain
  (mid-publish, mid-deletion of acked rows, right after an ack) and started again.
- The relay (`tillbox relay run`) is SIGKILLed while ingesting: its batch in hand is neither
  committed nor PUBACKed, so the broker sends it again to the restarted instance.
- Two relay instances share the subscription: each gets part of every terminal's stream,
  and together they store each event once.
"""

from __future__ import annotations

import random

import pytest

from tests.e2e.conftest import Shop, Terminal

BOTH_DATABASES = pytest.mark.parametrize("relay_db", ["sqlite", "postgresql"], indirect=True)
# One window past the relay's ack: the drain waits for each ack, so it runs at a few thousand
# events a second instead of ten thousand and every kill lands in the middle of it.
PACED = {"unacked_max": 100}


def mark_ahead(rng: random.Random, shop: Shop, till: Terminal, head: int, span: int) -> int:
    """A random seq a little ahead of what the relay has stored."""
    return min(head - 1, shop.relay_head(till) + rng.randint(1, span))


def kill_the_till_while_draining(shop: Shop, backlog: int, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    shop.relay()
    till = shop.terminal(backlog=backlog, **PACED)
    head = till.health()["journal"]["seq"]
    span = max(2, head // (kills + 2))
    for n in range(kills):
        mark = mark_ahead(rng, shop, till, head, span)
        shop.wait_relay_past(till, mark)
        till.kill()  # wherever the daemon is: publishing, deleting acked rows, reading an ack
        stored = shop.relay_head(till)
        assert stored < head, f"kill {n + 1} came after the drain; grow the backlog"
        till.start()
    shop.wait_drained(till, timeout=180)
    journal = shop.check(till)
    assert len(journal) == head


def test_kill_minus_nine_of_the_till_while_draining(shop: Shop) -> None:
    kill_the_till_while_draining(shop, backlog=1_000, kills=3, seed=1)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_kill_minus_nine_of_the_till_while_draining_soak(shop: Shop) -> None:
    """Soak sibling of the test above: a dozen kills through a 10,000-sale backlog."""
    kill_the_till_while_draining(shop, backlog=10_000, kills=12, seed=2)


def kill_the_relay_while_ingesting(shop: Shop, backlog: int, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    relay = shop.relay(batch_size=100)
    till = shop.terminal(backlog=backlog, **PACED)
    head = till.health()["journal"]["seq"]
    span = max(2, head // (kills + 2))
    for n in range(kills):
        mark = mark_ahead(rng, shop, till, head, span)
        shop.wait_relay_past(till, mark)
        relay.kill()
        assert shop.relay_head(till) < head, f"kill {n + 1} came after the drain"
        relay.start()
    shop.wait_drained(till, timeout=180)
    shop.check(till)


@BOTH_DATABASES
def test_kill_minus_nine_of_the_relay_while_ingesting(shop: Shop) -> None:
    kill_the_relay_while_ingesting(shop, backlog=1_000, kills=2, seed=3)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@BOTH_DATABASES
def test_kill_minus_nine_of_the_relay_while_ingesting_soak(shop: Shop) -> None:
    """Soak sibling of the test above: a dozen relay kills through a 10,000-sale backlog."""
    kill_the_relay_while_ingesting(shop, backlog=10_000, kills=12, seed=4)


def two_relays(shop: Shop, backlog: int) -> None:
    one = shop.relay("relay-1", batch_size=50)
    two = shop.relay("relay-2", batch_size=50)
    tills = [shop.terminal(t, backlog=backlog, start=False) for t in ("t1", "t2")]
    for till in tills:
        till.start()
    for till in tills:
        shop.wait_drained(till, timeout=180)
    total = sum(len(till.journal()) for till in tills)
    counts = [one.stop(), two.stop()]
    assert all(counts), "a relay logged no counts when it stopped"
    for c in counts:
        # Each instance took a real share of the traffic (Mosquitto deals round-robin).
        assert c["received"] >= total // 10, counts
        assert c["dead"] == 0, counts
    assert sum(c["stored"] for c in counts) == total, counts
    for till in tills:
        shop.check(till)


@BOTH_DATABASES
def test_two_relays_on_the_shared_subscription_store_each_event_once(shop: Shop) -> None:
    two_relays(shop, backlog=400)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@BOTH_DATABASES
def test_two_relays_on_the_shared_subscription_soak(shop: Shop) -> None:
    """Soak sibling of the test above: two tills with 5,000 offline sales each."""
    two_relays(shop, backlog=5_000)
