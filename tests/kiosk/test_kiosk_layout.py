# The kiosk fits the counter's screens and is built for fingers; it is served whole by the daemon.
from __future__ import annotations

import random
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from terminal.api import create_app
from terminal.config import load
from terminal.demo.run import free_port, write_config
from tests.conftest import Daemon

from .conftest import Kiosk, card_like_numbers, luhn_ok

UI = Path(__file__).resolve().parents[2] / "terminal" / "ui"
# Every visible button: at least 48×48 CSS pixels, and inside the screen unless it sits in a
# list that scrolls (the category strip, the item grid).
TOO_SMALL = """() => {
  const scrolls = (el) => el && (/(auto|scroll)/.test(
    getComputedStyle(el).overflowX + getComputedStyle(el).overflowY) || scrolls(el.parentElement));
  const bad = (b) => {
    const r = b.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(b).visibility === 'hidden') return false;
    const onScreen = r.left >= -1 && r.top >= -1 && r.right <= innerWidth + 1
      && r.bottom <= innerHeight + 1;
    return r.width < 48 || r.height < 48 || !(onScreen || scrolls(b.parentElement));
  };
  const size = (r) => `${Math.round(r.width)}x${Math.round(r.height)}`;
  return [...document.querySelectorAll('button')].filter(bad)
    .map(b => `${b.textContent.trim()} ${size(b.getBoundingClientRect())}`);
}"""


@pytest.mark.parametrize(
    "size", [(800, 480), (1024, 600), (1920, 1080)], ids=lambda s: f"{s[0]}x{s[1]}"
)
def test_every_screen_fits_and_every_target_takes_a_finger(
    kiosk: Kiosk, size: tuple[int, int]
) -> None:
    page = kiosk.page
    page.set_viewport_size({"width": size[0], "height": size[1]})
    kiosk.open()

    def check(where: str) -> None:
        assert page.evaluate(TOO_SMALL) == [], where
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), where
        assert page.evaluate("getComputedStyle(document.body).userSelect") == "none"

    check("login")
    kiosk.login()
    kiosk.open_shift()
    kiosk.tap_item("BK-0001")
    check("sale")
    for big in ("total", "pay"):
        box = page.get_by_test_id(big).bounding_box()
        assert box and box["y"] + box["height"] <= size[1], f"{big} is off the screen"
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("due")).to_be_visible()
    check("payment")
    cash = page.get_by_test_id("cash").bounding_box()
    assert cash and cash["y"] + cash["height"] <= size[1], "the cash key is off the screen"
    page.get_by_role("button", name="Close").click()
    page.get_by_test_id("search").click()
    expect(page.get_by_test_id("keyboard")).to_be_visible()
    check("keyboard")
    page.get_by_test_id("keyboard").get_by_role("button", name="Done").click()
    page.locator("#bar-menu").click()
    check("menu")


def test_no_zoom_and_no_outside_assets() -> None:
    html = (UI / "index.html").read_text(encoding="utf-8")
    assert "user-scalable=no" in html
    for path in UI.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), (
            f"{path.name} loads from outside"
        )


def test_the_ui_mount_comes_after_every_route(tmp_path: Path) -> None:
    app = create_app(load(write_config(tmp_path, free_port()), environ={}))
    assert getattr(app.router.routes[-1], "name", None) == "ui", (
        "a route added after the UI mount is never reached"
    )


def test_the_daemon_serves_the_kiosk_and_keeps_api_answers(daemon: Daemon) -> None:
    page = httpx.get(f"{daemon.url}/")
    assert page.status_code == 200 and "app.js" in page.text
    assert httpx.get(f"{daemon.url}/app.js").headers["content-type"].startswith("text/javascript")
    missing = httpx.get(f"{daemon.url}/api/v1/no-such-thing")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong = httpx.put(f"{daemon.url}/api/v1/store")
    assert wrong.status_code == 405
    store = httpx.get(f"{daemon.url}/api/v1/store").json()
    assert store == {
        "name": "Eckladen Müller",
        "currency": "EUR",
        "locale": "de-DE",
        "minor_units": 2,
    }


def test_the_card_number_check_finds_one() -> None:
    """The DOM check of every kiosk test can fail: it finds a number made here (never written)."""
    rng = random.Random(7)
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
    number = next(body + d for d in "0123456789" if luhn_ok(body + d))
    grouped = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    assert card_like_numbers(f"Card {number} paid") == [number]
    assert number in card_like_numbers(f"Card {grouped} paid")
    assert (
        card_like_numbers("VISA 411111******1111 · Receipt demo-t1-000001 · 4006381333931 · 1,65 €")
        == []
    )
