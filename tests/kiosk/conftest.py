# The kiosk in Debian's Chromium (driven by Playwright) against the real daemon on a free port.
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright

from tests.conftest import CASHIER_PIN, Daemon

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
SIZES = [(800, 480), (1280, 800)]
DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,}")

expect.set_options(timeout=5000)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_like_numbers(text: str) -> list[str]:
    """Every Luhn-valid run of 13 to 19 digits (spaces or dashes between them allowed)."""
    found = []
    for match in DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        for size in range(13, 20):
            for start in range(len(digits) - size + 1):
                if luhn_ok(digits[start : start + size]):
                    found.append(digits[start : start + size])
    return found


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def context(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    ctx = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=FLAGS,
        viewport={"width": 800, "height": 480},
    )
    yield ctx
    ctx.close()


class Kiosk:
    """The kiosk page and the steps a cashier takes on it, by touch."""

    def __init__(self, page: Page, daemon: Daemon) -> None:
        self.page = page
        self.daemon = daemon
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, query: str = "") -> None:
        self.page.goto(f"{self.daemon.url}/{query}")
        expect(self.page.get_by_test_id("login")).to_be_visible()

    def keys(self, digits: str, within: str = "") -> None:
        scope = self.page.locator(within) if within else self.page
        for d in digits:
            scope.locator(f"[data-key='{d}']").last.click()

    def ok(self, within: str = "") -> None:
        scope = self.page.locator(within) if within else self.page
        scope.locator("[data-key=ok]").last.click()

    def login(self, pin: str = CASHIER_PIN) -> None:
        self.keys(pin, "[data-testid=login]")
        self.ok("[data-testid=login]")

    def open_shift(self, opening_float: str = "10000") -> None:
        expect(self.page.get_by_test_id("open-shift")).to_be_visible()
        self.keys(opening_float, "[data-testid=open-shift]")
        self.ok("[data-testid=open-shift]")
        expect(self.page.get_by_test_id("sale")).to_be_visible()

    def start(self, query: str = "") -> None:
        self.open(query)
        self.login()
        self.open_shift()

    def tap_item(self, sku: str) -> None:
        self.page.locator(f"[data-testid=item][data-sku='{sku}']").click()

    def scan(self, code: str) -> None:
        """A keyboard-wedge scanner: the code's keys, then Enter, with nothing focused."""
        self.page.evaluate("document.activeElement && document.activeElement.blur()")
        self.page.keyboard.type(code + "\n")

    def lines(self) -> Any:
        return self.page.get_by_test_id("line")

    def manager_pin(self, pin: str) -> None:
        expect(self.page.get_by_test_id("ask-pin")).to_be_visible()
        self.keys(pin, "[data-testid=ask-pin]")
        self.ok("[data-testid=ask-pin]")

    def reason(self, text: str) -> None:
        self.page.get_by_test_id("reasons").get_by_role("button", name=text).click()

    def error_text(self) -> str:
        box = self.page.get_by_test_id("error-message")
        expect(box).to_be_visible()
        return str(box.inner_text())

    def dismiss_error(self) -> None:
        self.page.get_by_test_id("error").get_by_role("button", name="OK").click()

    def shoot(self, name: str) -> None:
        """The screen as it is, at the Pi touchscreen's size and a laptop's, into docs/screens/."""
        SCREENS.mkdir(exist_ok=True)
        before = self.page.viewport_size
        for width, height in SIZES:
            self.page.set_viewport_size({"width": width, "height": height})
            self.page.wait_for_timeout(150)
            self.page.screenshot(
                path=SCREENS / f"{name}-{width}x{height}.png", animations="disabled"
            )
        if before:
            self.page.set_viewport_size(before)

    def assert_no_card_number(self) -> None:
        text = self.page.evaluate(
            "document.body.innerText + ' ' + [...document.querySelectorAll('input')]"
            ".map(i => i.value).join(' ')"
        )
        assert card_like_numbers(text) == [], "the screen shows what could be a full card number"

    def check(self) -> None:
        """What every test ends with: no script error, no full card number on screen."""
        self.assert_no_card_number()
        assert self.errors == [], self.errors


@pytest.fixture
def kiosk(daemon: Daemon, context: BrowserContext) -> Iterator[Kiosk]:
    k = Kiosk(context.new_page(), daemon)
    yield k
    k.check()


@contextmanager
def api(daemon: Daemon, pin: str = CASHIER_PIN) -> Iterator[httpx.Client]:
    """A logged-in API client for the daemon the kiosk talks to."""
    client = daemon.client(pin)
    try:
        yield client
    finally:
        client.close()
