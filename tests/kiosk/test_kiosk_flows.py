# Whole flows on the kiosk, by touch, in a real browser against the real daemon.
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from terminal.demo.run import free_port
from terminal.downsync import Cache
from tests.conftest import MANAGER_PIN, Daemon

from .conftest import Kiosk, api

ROLL = ("BK-0001", "43742844", 45)  # Roggenbrötchen: sku, barcode, price
SEEDED = ("BK-0003", 75)  # Kürbiskernbrötchen


def completed_sale(daemon: Daemon) -> dict:
    """A sale rung up and paid through the API: two rolls and a seeded roll; card and cash."""
    with api(daemon) as c:
        if c.get("/shifts/current").status_code == 404:
            c.post("/shifts", json={"opening_float": 10000}).raise_for_status()
        sale = c.post("/sales").json()["sale_id"]
        c.post(f"/sales/{sale}/lines", json={"barcode": ROLL[1], "quantity": 2}).raise_for_status()
        c.post(f"/sales/{sale}/lines", json={"sku": SEEDED[0]}).raise_for_status()
        card = {
            "brand": "VISA",
            "masked_pan": "411111******1111",
            "auth_code": "A1B2C3",
            "trace": "000123",
        }
        c.post(
            f"/sales/{sale}/payments", json={"method": "card", "amount": 100, "card": card}
        ).raise_for_status()
        done = c.post(f"/sales/{sale}/payments", json={"method": "cash", "tendered": 100}).json()
        assert done["status"] == "completed"
        return done


def test_a_cash_sale_from_login_to_change(kiosk: Kiosk) -> None:
    kiosk.open()
    kiosk.shoot("login")
    kiosk.login()
    kiosk.open_shift("10000")
    page = kiosk.page

    kiosk.tap_item(SEEDED[0])  # by touch, from the category grid
    kiosk.scan(ROLL[1])  # and by the scanner
    expect(kiosk.lines()).to_have_count(2)
    kiosk.lines().nth(1).click()  # the rolls: one more
    page.get_by_role("button", name="One more").click()
    expect(page.get_by_test_id("qty")).to_have_text("2")
    page.get_by_test_id("line-editor").get_by_role("button", name="Close").click()
    expect(page.get_by_test_id("total")).to_have_text("1,65 €")
    kiosk.shoot("sale")

    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("due")).to_have_text("1,65 €")
    kiosk.keys("2000", "[data-testid=pay]")  # typing replaces the amount due
    kiosk.shoot("pay")
    page.get_by_test_id("cash").click()
    expect(page.get_by_test_id("change")).to_have_text("18,35 €")
    kiosk.shoot("change")

    with api(kiosk.daemon) as c:
        receipt_no = page.locator(".receipt-no").inner_text().split()[-1]
        sale = c.get(f"/receipts/{receipt_no}").json()
    assert (sale["status"], sale["total"], sale["change"]) == ("completed", 165, 1835)
    assert [(li["sku"], li["quantity"]) for li in sale["lines"]] == [
        (SEEDED[0], "1"),
        (ROLL[0], "2"),
    ]

    page.get_by_test_id("new-sale").click()
    expect(kiosk.lines()).to_have_count(0)
    expect(page.get_by_test_id("total")).to_have_text("0,00 €")


def test_a_price_override_needs_a_manager_pin(kiosk: Kiosk) -> None:
    kiosk.start()
    page = kiosk.page
    kiosk.tap_item(ROLL[0])
    kiosk.lines().first.click()
    page.get_by_test_id("override").click()
    kiosk.keys("30", "[data-testid=ask-number]")
    kiosk.ok("[data-testid=ask-number]")
    kiosk.reason("Damaged packaging")
    kiosk.manager_pin("2222")  # Ben is a cashier, not a manager
    expect(page.get_by_test_id("hint")).to_have_text(re.compile("not a manager's PIN"))
    kiosk.manager_pin(MANAGER_PIN)
    expect(page.get_by_test_id("line-editor")).to_be_hidden()
    expect(kiosk.lines().first).to_contain_text("0,30 €")
    expect(kiosk.lines().first).to_contain_text("Price changed: Damaged packaging")
    with api(kiosk.daemon) as c:
        (sale,) = c.get("/sales").json()["sales"]
    assert sale["lines"][0]["unit_price"] == 30
    assert sale["lines"][0]["override"]["reason"] == "Damaged packaging"

    # A discount within the cashier's limit goes through without asking anyone.
    kiosk.lines().first.click()
    page.get_by_test_id("line-editor").get_by_role("button", name="5 %").click()
    expect(page.get_by_test_id("line-editor")).to_be_hidden()
    expect(kiosk.lines().first).to_contain_text("Discount")


def test_a_refund_from_a_scanned_receipt(kiosk: Kiosk) -> None:
    sold = completed_sale(kiosk.daemon)
    kiosk.open()
    kiosk.login()  # the shift is already open: straight to the sale screen
    expect(kiosk.page.get_by_test_id("sale")).to_be_visible()
    page = kiosk.page

    kiosk.scan(sold["receipt_no"])
    refund = page.get_by_test_id("refund")
    expect(refund.get_by_test_id("refund-line")).to_have_count(2)
    refund.get_by_test_id("refund-more").first.click()  # one of the two rolls
    expect(refund.get_by_test_id("refund-qty").first).to_have_text("1")
    kiosk.shoot("refund")
    refund.get_by_test_id("refund-submit").click()
    kiosk.reason("Faulty")
    kiosk.manager_pin(MANAGER_PIN)
    expect(page.get_by_test_id("refunded")).to_have_text("0,45 €")
    expect(page.get_by_test_id("refund-done")).to_contain_text(
        "411111******1111"
    )  # back to the card

    with api(kiosk.daemon) as c:
        after = c.get(f"/sales/{sold['sale_id']}").json()
    (done,) = after["refunds"]
    assert (done["total"], done["approved_by"], done["reason"]) == (45, "mia", "Faulty")
    assert done["lines"][0]["quantity"] == "1"


def test_an_unknown_receipt_says_what_to_do(kiosk: Kiosk) -> None:
    kiosk.start()
    kiosk.scan("demo-t1-999999")
    assert "No receipt demo-t1-999999 on this till" in kiosk.error_text()


def test_closing_the_shift_shows_the_z_report(kiosk: Kiosk) -> None:
    kiosk.start()
    page = kiosk.page
    kiosk.tap_item(ROLL[0])
    page.get_by_test_id("pay").click()
    page.get_by_test_id("cash").click()  # exact: the keypad starts at what is due
    page.get_by_test_id("new-sale").click()

    page.locator("#bar-menu").click()
    page.get_by_test_id("menu-close-shift").click()
    kiosk.keys("10100", "[data-testid=close-shift]")
    kiosk.ok("[data-testid=close-shift]")
    report = page.get_by_test_id("z-report")
    expect(report).to_contain_text("Z report")
    cash = report.get_by_test_id("z-cash")
    expect(cash).to_contain_text("100,45 €")  # expected: float + one roll
    expect(cash).to_contain_text("101,00 €")  # counted
    expect(cash).to_contain_text("0,55 €")  # over
    kiosk.shoot("z-report")
    with api(kiosk.daemon) as c:
        assert c.get("/shifts/current").json()["error"]["code"] == "no_shift"
    page.get_by_test_id("z-done").click()
    expect(page.get_by_test_id("login")).to_be_visible()


def test_void_and_no_sale_need_a_manager(kiosk: Kiosk) -> None:
    kiosk.start()
    page = kiosk.page
    kiosk.tap_item(ROLL[0])
    expect(kiosk.lines()).to_have_count(1)
    page.locator("#bar-menu").click()
    page.get_by_test_id("menu-void").click()
    page.get_by_test_id("confirm-ok").click()
    kiosk.reason("Customer left")
    kiosk.manager_pin(MANAGER_PIN)
    expect(page.get_by_test_id("toast").first).to_have_text("Sale voided.")
    expect(kiosk.lines()).to_have_count(0)

    page.locator("#bar-menu").click()
    page.get_by_test_id("menu-no-sale").click()
    kiosk.reason("Change for a customer")
    kiosk.manager_pin(MANAGER_PIN)
    expect(page.get_by_text("The drawer is open.")).to_be_visible()
    with api(kiosk.daemon) as c:
        report = c.get("/shifts/current").json()["report"]
    assert (report["voids"]["count"], report["no_sales"]) == (1, 1)


def test_errors_come_in_the_cashiers_words(kiosk: Kiosk) -> None:
    kiosk.open()
    kiosk.login("4321")
    expect(kiosk.page.get_by_test_id("login-message")).to_have_text(
        "That PIN is not right. Try again."
    )
    kiosk.login()
    kiosk.open_shift()
    for code in ("4012345678901", "4012345678902"):  # no item has it; a misread check digit
        kiosk.scan(code)
        shown = kiosk.error_text()
        kiosk.dismiss_error()
        answer = httpx.get(f"{kiosk.daemon.url}/api/v1/catalog/barcodes/{code}").json()
        assert shown == answer["error"]["message"]

    kiosk.tap_item(ROLL[0])  # an open sale keeps the shift from closing
    kiosk.page.locator("#bar-menu").click()
    kiosk.page.get_by_test_id("menu-close-shift").click()
    kiosk.keys("1", "[data-testid=close-shift]")
    kiosk.ok("[data-testid=close-shift]")
    assert "open" in kiosk.error_text().lower()


def test_auto_lock_keeps_the_open_sale(kiosk: Kiosk) -> None:
    kiosk.start("?autolock=2")
    kiosk.tap_item(ROLL[0])
    expect(kiosk.lines()).to_have_count(1)
    expect(kiosk.page.get_by_test_id("login-message")).to_contain_text(
        "Locked after 2 seconds", timeout=6000
    )
    kiosk.login()
    expect(kiosk.lines()).to_have_count(1)


def test_a_line_added_elsewhere_shows_without_a_tap(kiosk: Kiosk) -> None:
    """What a scan at the till's own scanner does: the daemon adds the line, the stream shows it."""
    kiosk.start()
    with api(kiosk.daemon) as c:
        sale = c.post("/sales").json()["sale_id"]
        c.post(f"/sales/{sale}/lines", json={"barcode": ROLL[1]}).raise_for_status()
    expect(kiosk.lines()).to_have_count(1)
    expect(kiosk.page.get_by_test_id("total")).to_have_text("0,45 €")


@pytest.fixture
def offline_daemon(config_path: Path) -> Iterator[Daemon]:
    """A till whose broker is not there: the uplink is on, nothing answers on its port."""
    env = {
        "TILLBOX_UPLINK__ENABLED": "true",
        "TILLBOX_UPLINK__TLS": "false",
        "TILLBOX_UPLINK__HOST": "127.0.0.1",
        "TILLBOX_UPLINK__PORT": str(free_port()),
    }
    d = Daemon(config_path, env)
    d.start()
    yield d
    d.stop()


def test_offline_banner_counts_what_waits(offline_daemon: Daemon, context: BrowserContext) -> None:
    kiosk = Kiosk(context.new_page(), offline_daemon)
    kiosk.start()
    kiosk.tap_item(ROLL[0])
    expect(kiosk.lines()).to_have_count(1)
    depth = httpx.get(f"{offline_daemon.url}/healthz").json()["uplink"]["outbox_depth"]
    assert depth >= 3  # shift opened, sale opened, line added
    banner = kiosk.page.get_by_test_id("banner")
    expect(banner).to_contain_text("Offline")
    expect(kiosk.page.get_by_test_id("link")).to_have_text(re.compile(r"Offline · \d+ waiting"))
    kiosk.page.reload()  # a fresh look at /healthz gives the exact count
    expect(kiosk.page.get_by_test_id("link")).to_have_text(f"Offline · {depth} waiting")
    kiosk.shoot("offline")
    kiosk.check()


@pytest.fixture
def customer_daemon(config_path: Path) -> Iterator[Daemon]:
    """A till whose cache holds the customers the relay sent down (written by the real cache)."""
    from terminal.config import load

    cache = Cache(load(config_path, environ={}).cache_path)
    customers = [
        {
            "id": "c-1",
            "name": "Jana Müller",
            "email": "jana@example.org",
            "phone": "+49 30 1234567",
            "marketing_consent": True,
            "loyalty_points": 120,
        },
        {
            "id": "c-2",
            "name": "Jan Berg",
            "email": None,
            "phone": None,
            "marketing_consent": False,
            "loyalty_points": 0,
        },
    ]
    cache.apply(
        "customers",
        "snapshot",
        {"schema": "tillbox.customers/1", "version": 1, "customers": customers},
        lambda *a: None,
    )  # type: ignore[arg-type,return-value]
    cache.close()
    d = Daemon(config_path)
    d.start()
    yield d
    d.stop()


def test_customer_lookup_shows_consent(customer_daemon: Daemon, context: BrowserContext) -> None:
    kiosk = Kiosk(context.new_page(), customer_daemon)
    kiosk.start()
    page = kiosk.page
    page.locator("#bar-menu").click()
    page.get_by_test_id("menu-customer").click()
    for ch in "jan":
        page.get_by_test_id("customer").locator(f".kb-key[data-char='{ch}']").click()
    rows = page.get_by_test_id("customer-row")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Jana Müller")).to_contain_text("Marketing: agreed")
    expect(rows.filter(has_text="Jan Berg")).to_contain_text("No marketing")
    kiosk.check()
