# purpose: sales made while the real broker is down reach the real relay exactly once, in order.
"""The broker goes away in the middle of trading and comes back, with its persistence file
kept (sessions, queued events and acks survive) or deleted (everything the broker held is
gone: queued events, acks, both sessions, the relay's subscription). Sales never stop; at
the end the relay must hold every event of the journal exactly once.

With the file deleted, events the broker had PUBACKed but not yet delivered are lost at the
broker, and so are acks for events already stored: the terminal's resend (after reconnect
and after `ack_timeout_s`) and the relay's dedupe by event id are what save the day.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Seller, Shop, wait_for

BOTH_DATABASES = pytest.mark.parametrize("relay_db", ["sqlite", "postgresql"], indirect=True)
PERSISTENCE = pytest.mark.parametrize("keep", [True, False], ids=["file-kept", "file-deleted"])


def broker_outage(shop: Shop, *, keep: bool, outage_sales: int, before: int = 8) -> None:
    shop.relay()
    till = shop.terminal()
    seller = Seller(till)
    seller.start()
    try:
        seller.wait_sales(before)
        wait_for("the relay to store something", lambda: shop.relay_head(till) > 0)
        shop.broker.stop()  # SIGTERM: Mosquitto writes its persistence file on the way out
        wait_for("the till to notice", lambda: till.uplink()["state"] != "online")
        seller.wait_sales(outage_sales)  # the shop keeps selling
        assert till.uplink()["outbox_depth"] >= outage_sales * 4
        if not keep:
            shop.broker.db_path.unlink()
        shop.start_broker()
        seller.wait_sales(before)
    finally:
        seller.finish()
    shop.wait_drained(till, timeout=90)
    shop.check(till)


@BOTH_DATABASES
@PERSISTENCE
def test_broker_stopped_during_sales_then_restarted(shop: Shop, keep: bool) -> None:
    broker_outage(shop, keep=keep, outage_sales=40)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@BOTH_DATABASES
@PERSISTENCE
def test_broker_long_outage_soak(shop: Shop, keep: bool) -> None:
    """Soak sibling of the test above: hundreds of sales through a long outage."""
    broker_outage(shop, keep=keep, outage_sales=600, before=50)


def test_broker_killed_without_saving_then_restarted(shop: Shop) -> None:
    """SIGKILL: the broker's last autosave is all it has; what it PUBACKed since is gone."""
    shop.relay()
    till = shop.terminal()
    seller = Seller(till)
    seller.start()
    try:
        seller.wait_sales(8)
        shop.broker.kill()
        seller.wait_sales(8)
        shop.start_broker()
        seller.wait_sales(8)
    finally:
        seller.finish()
    shop.wait_drained(till, timeout=90)
    shop.check(till)
