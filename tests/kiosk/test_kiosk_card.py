# Card tenders on the kiosk: the real daemon driving the ZVT terminal simulator over TCP.
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hwsim.zvt import ZvtSimulator
from playwright.sync_api import BrowserContext, expect

from tests.conftest import Daemon
from tests.terminal.payment_helpers import new_sim, payment_env

from .conftest import Kiosk, api

VISA_PAN = "476173******0119"


@pytest.fixture
def sim() -> Iterator[ZvtSimulator]:
    simulator = new_sim("tcp")
    yield simulator
    simulator.stop()


@pytest.fixture
def card_kiosk(config_path: Path, sim: ZvtSimulator, context: BrowserContext) -> Iterator[Kiosk]:
    daemon = Daemon(config_path, payment_env(sim))
    daemon.start()
    kiosk = Kiosk(context.new_page(), daemon)
    try:
        kiosk.start()
        kiosk.tap_item("BK-0001")
        expect(kiosk.lines()).to_have_count(1)
        kiosk.page.get_by_test_id("pay").click()
        yield kiosk
        kiosk.check()
    finally:
        daemon.stop()


def test_an_approved_card_completes_the_sale(card_kiosk: Kiosk, sim: ZvtSimulator) -> None:
    page = card_kiosk.page
    sim.approve("visa")
    page.get_by_test_id("card").click()
    done = page.get_by_test_id("done")
    expect(done).to_be_visible(timeout=15000)
    expect(done).to_contain_text(VISA_PAN)
    card_kiosk.shoot("card-paid")
    with api(card_kiosk.daemon) as c:
        assert c.get("/sales").json()["sales"] == []


def test_a_declined_card_says_why_and_the_sale_stays_open(
    card_kiosk: Kiosk, sim: ZvtSimulator
) -> None:
    page = card_kiosk.page
    sim.decline(0x05)
    page.get_by_test_id("card").click()
    expect(page.get_by_test_id("error")).to_be_visible(timeout=15000)
    message = card_kiosk.error_text()
    assert "declined" in message and message.endswith("The sale is still open.")
    card_kiosk.shoot("card-declined")
    card_kiosk.dismiss_error()
    expect(page.get_by_test_id("due")).to_have_text("0,45 €")
    page.get_by_test_id("cash").click()  # the customer pays cash instead
    expect(page.get_by_test_id("done")).to_be_visible()
