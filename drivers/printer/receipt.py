# purpose: pure renderer from the receipt model (a plain dict) to ESC/POS bytes for 58/80 mm paper.
"""Receipt model → ESC/POS bytes. No I/O, no clock, no locale module, no floats.

The model is what the sale domain hands over (see ``Receipt``); money values are integers
in minor units, formatted with the model's own ``money`` block. The bytes are built with
python-escpos's ``Dummy`` in one code page chosen for the store language, so accents and
the euro sign print on any ESC/POS printer that has that table.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NotRequired, TypedDict

from PIL import Image

from ._escpos import Builder

# ---------------------------------------------------------------------------------- model


class MoneyFormat(TypedDict):
    """How the store writes money: ``12,99 €`` or ``$12.99``."""

    symbol: str
    decimals: int
    decimal_sep: str
    thousands_sep: str
    symbol_after: bool


class Store(TypedDict):
    """The header block."""

    name: str
    address: NotRequired[list[str]]
    tax_id: NotRequired[str | None]


class ReceiptLine(TypedDict):
    """One sold item; ``quantity`` is a decimal string printed as given."""

    name: str
    quantity: str
    unit: str
    unit_price: int
    amount: int
    discount: NotRequired[int]
    tax_code: NotRequired[str]
    note: NotRequired[str | None]


class TaxRow(TypedDict):
    """One tax rate's share of the receipt; ``rate`` is a decimal string in percent."""

    code: str
    rate: str
    net: int
    tax: int
    gross: int


class CardData(TypedDict):
    """What the card terminal reported; the PAN is masked before it ever gets here."""

    brand: str
    masked_pan: str
    auth_code: NotRequired[str | None]
    trace: NotRequired[str | None]
    receipt: NotRequired[str | None]
    terminal_id: NotRequired[str | None]


class Payment(TypedDict):
    """One tender."""

    method: str
    amount: int
    tendered: NotRequired[int | None]
    card: NotRequired[CardData | None]


class Receipt(TypedDict):
    """The receipt model the sale domain hands to the printer."""

    kind: Literal["sale", "refund"]
    receipt_no: str
    barcode: NotRequired[str | None]
    at: str
    cashier: NotRequired[str | None]
    store: Store
    money: MoneyFormat
    lines: list[ReceiptLine]
    subtotal: int
    discount: NotRequired[int]
    total: int
    taxes: list[TaxRow]
    payments: list[Payment]
    change: NotRequired[int]
    rounding: NotRequired[int]
    card_receipt_lines: NotRequired[list[str]]
    footer: NotRequired[list[str]]


# -------------------------------------------------------------------------------- options

PAPER_COLUMNS: Mapping[int, int] = {58: 32, 80: 48}
"""Characters per line in the printer's font A at each paper width."""
PAPER_DOTS: Mapping[int, int] = {58: 384, 80: 576}
"""Printable width in dots (203 dpi heads) — the widest logo that fits."""

CODE_PAGES: Mapping[str, str] = {
    **dict.fromkeys(
        ("de", "en", "fr", "it", "es", "pt", "nl", "da", "sv", "fi", "nb", "no", "is", "ga"),
        "CP858",
    ),
    **dict.fromkeys(("pl", "cs", "sk", "hu", "sl", "hr", "ro", "bs"), "CP1250"),
    **dict.fromkeys(("ru", "uk", "bg", "sr", "mk", "be"), "CP1251"),
    "el": "CP1253",
    "tr": "CP1254",
}
"""Store language → printer code page. CP858 is CP850 with the euro sign."""
DEFAULT_CODE_PAGE = "CP858"


def code_page_for(language: str) -> str:
    """The code page that prints the language's accents and its currency sign."""
    return CODE_PAGES.get(language.split("-")[0].split("_")[0].lower(), DEFAULT_CODE_PAGE)


LABELS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "receipt": "Receipt",
        "cashier": "Cashier",
        "subtotal": "Subtotal",
        "discount": "Discount",
        "total": "TOTAL",
        "tax": "Tax",
        "rate": "Rate",
        "net": "Net",
        "gross": "Gross",
        "cash": "Cash",
        "card": "Card",
        "tendered": "Given",
        "change": "Change",
        "rounding": "Rounding",
        "refund": "REFUND",
        "tax_id": "Tax ID",
        "auth": "Auth",
        "trace": "Trace",
        "card_receipt": "Rcpt",
        "terminal": "TID",
    },
    "de": {
        "receipt": "Beleg",
        "cashier": "Kasse",
        "subtotal": "Zwischensumme",
        "discount": "Rabatt",
        "total": "SUMME",
        "tax": "MwSt",
        "rate": "Satz",
        "net": "Netto",
        "gross": "Brutto",
        "cash": "Bar",
        "card": "Karte",
        "tendered": "Gegeben",
        "change": "Rückgeld",
        "rounding": "Rundung",
        "refund": "ERSTATTUNG",
        "tax_id": "USt-IdNr.",
        "auth": "Genehm.",
        "trace": "Trace",
        "card_receipt": "Beleg",
        "terminal": "TID",
    },
}


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How to lay the receipt out for one printer."""

    paper_mm: Literal[58, 80] = 80
    language: str = "de"
    code_page: str | None = None
    """None: pick from ``language`` with ``code_page_for``."""
    profile: str | None = None
    """python-escpos printer profile (code page slot numbers); None is the generic one."""
    columns: int | None = None
    """None: 32 on 58 mm, 48 on 80 mm."""
    logo: Image.Image | None = field(default=None, compare=False)
    receipt_code: Literal["auto", "code128", "qr", "none"] = "auto"
    """auto: CODE128 on 80 mm, QR on 58 mm (a CODE128 of a long number is too wide there)."""
    partial_cut: bool = True
    labels: Mapping[str, str] | None = None
    """Overrides for single labels (keys as in ``LABELS``)."""

    @property
    def width(self) -> int:
        """Characters per line."""
        return self.columns or PAPER_COLUMNS[self.paper_mm]

    @property
    def resolved_code_page(self) -> str:
        """The code page the receipt is printed in."""
        return self.code_page or code_page_for(self.language)


# --------------------------------------------------------------------------------- format


def format_money(value: int, fmt: MoneyFormat, *, symbol: bool = True) -> str:
    """Format minor units with the store's separators: 123456 → ``1.234,56 €``."""
    decimals = max(0, int(fmt["decimals"]))
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    digits = str(whole)
    groups = [digits[max(0, i - 3) : i] for i in range(len(digits), 0, -3)][::-1]
    number = fmt["thousands_sep"].join(groups)
    if decimals:
        number += fmt["decimal_sep"] + str(frac).rjust(decimals, "0")
    if not symbol or not fmt["symbol"]:
        return sign + number
    if fmt["symbol_after"]:
        return f"{sign}{number} {fmt['symbol']}"
    return f"{sign}{fmt['symbol']}{number}"


_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,18}")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = [c for c in run if c.isdigit()]
    if not _luhn_ok("".join(digits)):
        return run
    keep = len(digits) - 4
    out: list[str] = []
    seen = 0
    for c in run:
        if c.isdigit():
            out.append(c if seen >= keep else "*")
            seen += 1
        else:
            out.append(c)
    return "".join(out)


def scrub_card_numbers(text: str) -> str:
    """Mask any full card number (13–19 digits passing Luhn) to its last four digits."""
    return _DIGIT_RUN.sub(_mask_run, text) if len(text) >= 13 else text


def mask_pan(masked_pan: str) -> str:
    """Show at most the last four digits of a PAN, whatever the terminal sent."""
    digits = sum(c.isdigit() for c in masked_pan)
    keep = 4
    out: list[str] = []
    seen = 0
    for c in masked_pan:
        if c.isdigit():
            out.append(c if seen >= digits - keep else "*")
            seen += 1
        else:
            out.append(c)
    return "".join(out)


def _two_cols(left: str, right: str, width: int) -> list[str]:
    """``left`` and ``right`` on one line, or left wrapped above a right-aligned ``right``."""
    if len(left) + 1 + len(right) <= width:
        return [left + " " * (width - len(left) - len(right)) + right]
    lines = textwrap.wrap(left, width) or [""]
    if len(lines[-1]) + 1 + len(right) <= width:
        last = lines.pop()
        return [*lines, last + " " * (width - len(last) - len(right)) + right]
    return [*lines, right.rjust(width)]


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent) or [""]


def _fit_logo(logo: Image.Image, dots: int) -> Image.Image:
    img = logo.convert("L")
    if img.width > dots:
        img = img.resize((dots, max(1, img.height * dots // img.width)))
    canvas = Image.new("L", (dots, img.height), 255)
    canvas.paste(img, ((dots - img.width) // 2, 0))
    return canvas


# --------------------------------------------------------------------------------- render


class _Page:
    """Adds lines to the builder, masking card numbers in every line of text."""

    def __init__(self, builder: Builder, width: int) -> None:
        self.b = builder
        self.width = width

    def lines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.b.line(scrub_card_numbers(line))

    def rule(self) -> None:
        self.b.line("-" * self.width)


def render_receipt(receipt: Receipt, options: RenderOptions | None = None) -> bytes:
    """Render the receipt model to ESC/POS bytes, ending with a cut."""
    opts = options or RenderOptions()
    width = opts.width
    money = receipt["money"]
    labels = dict(LABELS["en"])
    labels.update(LABELS.get(opts.language.split("-")[0].lower(), {}))
    labels.update(opts.labels or {})

    def m(value: int, symbol: bool = False) -> str:
        return format_money(value, money, symbol=symbol)

    b = Builder(code_page=opts.resolved_code_page, profile=opts.profile)
    page = _Page(b, width)

    # Header
    if opts.logo is not None:
        b.style(align="center")
        b.image(_fit_logo(opts.logo, PAPER_DOTS.get(opts.paper_mm, 384)))
    store = receipt["store"]
    b.style(align="center", bold=True, double_height=True)
    page.lines(_wrap(store["name"], width))
    b.style(align="center")
    page.lines([a for line in store.get("address", []) for a in _wrap(line, width)])
    if store.get("tax_id"):
        page.lines(_wrap(f"{labels['tax_id']} {store.get('tax_id')}", width))
    if receipt["kind"] == "refund":
        b.style(align="center", bold=True, double_width=True, double_height=True)
        page.lines(_wrap(labels["refund"], width // 2))
    b.style(align="left")
    b.line()
    page.lines(_two_cols(f"{labels['receipt']} {receipt['receipt_no']}", receipt["at"], width))
    if receipt.get("cashier"):
        page.lines(_wrap(f"{labels['cashier']}: {receipt.get('cashier')}", width))
    page.rule()

    # Lines
    for item in receipt["lines"]:
        tax = f" {item['tax_code']}" if item.get("tax_code") else ""
        amount = m(item["amount"]) + tax
        if item["quantity"] == "1" and item["unit"] in ("each", "pc", "pcs", ""):
            page.lines(_two_cols(item["name"], amount, width))
        else:
            page.lines(_wrap(item["name"], width))
            unit = "" if item["unit"] in ("each", "pc", "pcs", "") else f" {item['unit']}"
            qty = f"  {item['quantity']}{unit} × {m(item['unit_price'])}"
            page.lines(_two_cols(qty, amount, width))
        discount = item.get("discount") or 0
        if discount:
            page.lines(_two_cols(f"  {labels['discount']}", m(-discount) + " " * len(tax), width))
        note = item.get("note")
        if note:
            page.lines(_wrap(note, width, indent="  "))
    page.rule()

    # Totals
    page.lines(_two_cols(labels["subtotal"], m(receipt["subtotal"], True), width))
    cart_discount = receipt.get("discount") or 0
    if cart_discount:
        page.lines(_two_cols(labels["discount"], m(-cart_discount, True), width))
    total_text = m(receipt["total"], True)
    if len(labels["total"]) + 1 + len(total_text) <= width // 2:
        b.style(bold=True, double_width=True, double_height=True)
        page.lines(_two_cols(labels["total"], total_text, width // 2))
    else:
        b.style(bold=True, double_height=True)
        page.lines(_two_cols(labels["total"], total_text, width))
    b.style(align="left")

    # Taxes per rate
    if receipt["taxes"]:
        page.rule()
        col = 8 if width < 40 else 12
        first = width - 3 * col
        header = labels["rate"][:first].ljust(first)
        page.lines(
            [
                header
                + labels["net"].rjust(col)
                + labels["tax"].rjust(col)
                + labels["gross"].rjust(col)
            ]
        )
        for row in receipt["taxes"]:
            rate = row["rate"].replace(".", money["decimal_sep"])
            head = f"{row['code']} {rate}%"[:first].ljust(first)
            cells = m(row["net"]).rjust(col) + m(row["tax"]).rjust(col)
            page.lines([head + cells + m(row["gross"]).rjust(col)])
    page.rule()

    # Payments
    for pay in receipt["payments"]:
        method = labels.get(pay["method"], pay["method"].replace("_", " ").title())
        card = pay.get("card")
        if card:
            method = f"{method} {card['brand']}"
        page.lines(_two_cols(method, m(pay["amount"], True), width))
        tendered = pay.get("tendered")
        if tendered is not None and tendered != pay["amount"]:
            page.lines(_two_cols(f"  {labels['tendered']}", m(tendered, True), width))
        if card:
            page.lines(_wrap(mask_pan(card["masked_pan"]), width, indent="  "))
            refs = [
                f"{labels[key]}\u00a0{card.get(name)}"
                for key, name in (
                    ("auth", "auth_code"),
                    ("trace", "trace"),
                    ("card_receipt", "receipt"),
                    ("terminal", "terminal_id"),
                )
                if card.get(name)
            ]
            page.lines([r.replace("\u00a0", " ") for r in _wrap("  ".join(refs), width, "  ")])
    rounding = receipt.get("rounding") or 0
    if rounding:
        page.lines(_two_cols(labels["rounding"], m(rounding, True), width))
    change = receipt.get("change") or 0
    if change:
        b.style(bold=True)
        page.lines(_two_cols(labels["change"], m(change, True), width))
        b.style()

    # Card terminal's own receipt text
    card_lines = receipt.get("card_receipt_lines") or []
    if card_lines:
        page.rule()
        page.lines([w for line in card_lines for w in _wrap(line, width)])

    # Receipt number as a code for returns
    payload = receipt.get("barcode") or receipt["receipt_no"]
    kind = opts.receipt_code
    if kind == "auto":
        kind = "code128" if width >= 40 else "qr"
    if kind == "code128" and not (
        payload.isascii() and payload.isprintable() and len(payload) <= 200
    ):
        kind = "qr"
    b.line()
    if kind == "code128":
        b.code128(payload)
    elif kind == "qr":
        b.qr(payload)

    # Footer
    footer = receipt.get("footer") or []
    if footer:
        b.style(align="center")
        page.lines([w for line in footer for w in _wrap(line, width)])
    b.style()
    b.cut(partial=opts.partial_cut)
    return b.output()
