# purpose: a new customer captured on the kiosk by touch, marketing answer off and on.
from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, expect

from .conftest import Kiosk, api

ROLL = "BK-0001"


def type_in(form: Locator, text: str) -> None:
    """Taps on the on-screen keyboard: letters, digits, space, @ and the dot."""
    for ch in text:
        if ch == " ":
            form.locator(".kb-space").click()
        else:
            form.locator(f".kb-key[data-char='{ch}']").click()


def open_form(kiosk: Kiosk) -> Locator:
    page = kiosk.page
    page.locator("#bar-menu").click()
    page.get_by_test_id("menu-customer").click()
    page.get_by_test_id("customer-new").click()
    form = page.get_by_test_id("customer-form")
    expect(form).to_be_visible()
    return form


def in_view_and_big_enough(kiosk: Kiosk, target: Locator) -> None:
    box = target.bounding_box()
    view = kiosk.page.viewport_size
    assert box is not None and view is not None
    assert box["height"] >= 48 and box["width"] >= 48, box
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= view["width"] + 0.5, box
    assert box["y"] + box["height"] <= view["height"] + 0.5, box


def customers(kiosk: Kiosk, q: str) -> list[dict[str, Any]]:
    with api(kiosk.daemon) as c:
        found: list[dict[str, Any]] = c.get("/customers", params={"q": q}).json()["customers"]
    return found


def open_sale(kiosk: Kiosk) -> dict[str, Any]:
    with api(kiosk.daemon) as c:
        [sale] = c.get("/sales").json()["sales"]
    return dict(sale)


def test_consent_stays_off_unless_tapped_and_errors_say_what_to_fix(kiosk: Kiosk) -> None:
    kiosk.start()
    page = kiosk.page
    kiosk.tap_item(ROLL)
    expect(kiosk.lines()).to_have_count(1)
    form = open_form(kiosk)
    consent = page.get_by_test_id("consent")
    expect(consent).to_have_attribute("aria-checked", "false")
    expect(consent).to_contain_text("Marketing: no")
    for target in (
        page.get_by_test_id("customer-name"),
        page.get_by_test_id("customer-email"),
        page.get_by_test_id("customer-phone"),
        consent,
        page.get_by_test_id("customer-save"),
        form.locator(".kb-key[data-char='a']"),
        form.locator("[data-key=ok]"),
    ):
        in_view_and_big_enough(kiosk, target)
    kiosk.shoot("customer-new")

    page.get_by_test_id("customer-save").click()  # nothing typed yet
    expect(page.get_by_test_id("customer-message")).to_have_text("Type the customer's name.")
    type_in(form, "jana meier")
    form.locator("[data-key=ok]").click()  # Next: on to the email
    type_in(form, "jana@example")
    page.get_by_test_id("customer-save").click()
    message = page.get_by_test_id("customer-message")
    expect(message).to_contain_text("Check the email address")
    expect(page.get_by_test_id("customer-email")).to_have_attribute("aria-invalid", "true")
    assert customers(kiosk, "jana") == []

    type_in(form, ".org")
    page.get_by_test_id("customer-save").click()
    expect(form).to_have_count(0)
    expect(page.get_by_test_id("customer")).to_have_count(0)
    expect(page.get_by_test_id("bar-customer")).to_have_text("Customer: jana meier")

    [jana] = customers(kiosk, "jana")
    assert jana["marketing_consent"] is False
    assert jana["email"] == "jana@example.org"
    sale = open_sale(kiosk)
    assert sale["customer"] == {"id": jana["id"], "name": "jana meier"}
    assert len(sale["lines"]) == 1  # the same sale the roll is on


def test_a_yes_is_recorded_and_the_customer_can_be_taken_off(kiosk: Kiosk) -> None:
    kiosk.start()
    page = kiosk.page
    form = open_form(kiosk)  # no sale open yet: saving opens one for the customer
    type_in(form, "tom berger")
    page.get_by_test_id("customer-phone").click()
    type_in(form, "030 7654321")
    consent = page.get_by_test_id("consent")
    consent.click()
    expect(consent).to_have_attribute("aria-checked", "true")
    expect(consent).to_contain_text("Marketing: yes")
    consent.click()  # a slip of the finger is undone with a second tap
    expect(consent).to_have_attribute("aria-checked", "false")
    consent.click()
    page.get_by_test_id("customer-save").click()
    bar = page.get_by_test_id("bar-customer")
    expect(bar).to_have_text("Customer: tom berger")
    in_view_and_big_enough(kiosk, bar)

    [tom] = customers(kiosk, "7654321")
    assert tom["marketing_consent"] is True
    assert tom["phone"] == "030 7654321"
    assert open_sale(kiosk)["customer"]["id"] == tom["id"]

    # Lookup shows the answer, and a tap puts an existing customer on the sale.
    bar.click()
    page.get_by_test_id("confirm-ok").click()
    expect(bar).to_be_hidden()
    assert open_sale(kiosk)["customer"] is None
    page.locator("#bar-menu").click()
    page.get_by_test_id("menu-customer").click()
    type_in(page.get_by_test_id("customer"), "berger")
    row = page.get_by_test_id("customer-row")
    expect(row).to_contain_text("Marketing: agreed")
    row.click()
    expect(bar).to_have_text("Customer: tom berger")
    assert open_sale(kiosk)["customer"]["id"] == tom["id"]
