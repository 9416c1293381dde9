# purpose: unit tests of the receipt renderer: money, code pages, layout widths, codes, masking.
from __future__ import annotations

import re

import pytest
from PIL import Image

from drivers.printer.receipt import (
    MoneyFormat,
    Receipt,
    RenderOptions,
    code_page_for,
    format_money,
    mask_pan,
    render_receipt,
    scrub_card_numbers,
)
from drivers.printer.sample import EURO_DE, sample_receipt

USD: MoneyFormat = {
    "symbol": "$",
    "decimals": 2,
    "decimal_sep": ".",
    "thousands_sep": ",",
    "symbol_after": False,
}
YEN: MoneyFormat = {
    "symbol": "¥",
    "decimals": 0,
    "decimal_sep": ".",
    "thousands_sep": ",",
    "symbol_after": False,
}


@pytest.mark.parametrize(
    ("value", "fmt", "symbol", "expected"),
    [
        (225, EURO_DE, True, "2,25 €"),
        (5, EURO_DE, True, "0,05 €"),
        (0, EURO_DE, False, "0,00"),
        (123456789, EURO_DE, True, "1.234.567,89 €"),
        (-1050, EURO_DE, True, "-10,50 €"),
        (100000, USD, True, "$1,000.00"),
        (-99, USD, True, "-$0.99"),
        (1234567, YEN, True, "¥1,234,567"),
    ],
)
def test_format_money(value: int, fmt: MoneyFormat, symbol: bool, expected: str) -> None:
    assert format_money(value, fmt, symbol=symbol) == expected


def test_code_page_follows_store_language() -> None:
    assert code_page_for("de") == "CP858"
    assert code_page_for("fr-CA") == "CP858"
    assert code_page_for("pl_PL") == "CP1250"
    assert code_page_for("xx") == "CP858"


def _text_after_code_page(data: bytes) -> str:
    """Decode the bytes the way the printer does after ESC t 19 (CP858)."""
    marker = data.index(b"\x1bt\x13")
    return data[marker + 3 :].decode("cp858", errors="replace")


def test_accents_and_euro_print_in_cp858() -> None:
    data = render_receipt(sample_receipt())
    assert data.startswith(b"\x1b@\x1bt\x13"), "init, then one code page for the whole receipt"
    assert data.count(b"\x1bt") == 1, "no code page hopping mid-receipt"
    text = _text_after_code_page(data)
    for expected in ("Café Müller", "Brötchen", "Äpfel Elstar", "2,25 €", "Danke für"):
        assert expected in text
    assert "€".encode("cp858") in data
    assert "é".encode("cp858") in data and "ü".encode("cp858") in data


def test_euro_is_not_printed_from_a_greek_table() -> None:
    # python-escpos's automatic choice would switch to ISO 8859-7 (ESC t 15) for "€".
    data = render_receipt(sample_receipt())
    assert b"\x1bt\x0f" not in data


def test_pc1252_can_be_chosen() -> None:
    data = render_receipt(sample_receipt(), RenderOptions(code_page="CP1252"))
    assert b"\x1bt\x10" in data  # slot 16
    assert "€".encode("cp1252") in data
    text = data[data.index(b"\x1bt\x10") + 3 :].decode("cp1252", errors="replace")
    assert "Café Müller" in text and "2,25 €" in text


def _printed_lines(data: bytes) -> list[str]:
    text = _text_after_code_page(data)
    text = re.sub(r"\x1b[!EaMt-].|\x1bd.|\x1d[!VhwfH].|\x1dkI.[^\n]*|\x1d\(k..[^\n]*", "", text)
    return [line for line in text.split("\n")]


@pytest.mark.parametrize(("paper", "columns"), [(58, 32), (80, 48)])
def test_no_line_is_wider_than_the_paper(paper: int, columns: int) -> None:
    receipt = sample_receipt(extra_lines=12)
    receipt["lines"][0]["name"] = "Sehr langer Artikelname mit Überlänge, der umbrechen muss"
    data = render_receipt(receipt, RenderOptions(paper_mm=paper))  # type: ignore[arg-type]
    lines = _printed_lines(data)
    assert max(len(line) for line in lines) <= columns
    assert "-" * columns in lines
    assert any(line.startswith("Bar") and line.endswith("5,00 €") for line in lines)


def test_weighed_line_shows_quantity_unit_and_price() -> None:
    text = _text_after_code_page(render_receipt(sample_receipt()))
    assert re.search(r"0\.452 kg × 2,99 +1,35 B", text)
    assert re.search(r"2 × 0,45 +0,90 B", text)


def test_discount_note_rounding_and_refund_are_printed() -> None:
    receipt = sample_receipt()
    receipt["kind"] = "refund"
    receipt["lines"][1]["discount"] = 20
    receipt["lines"][1]["note"] = "Price override: damaged"
    receipt["discount"] = 15
    receipt["rounding"] = -2
    text = _text_after_code_page(render_receipt(receipt, RenderOptions(language="en")))
    assert "REFUND" in text
    assert re.search(r"Discount +-0,20", text)
    assert "Price override: damaged" in text
    assert re.search(r"Discount +-0,15 €", text)
    assert re.search(r"Rounding +-0,02 €", text)
    assert re.search(r"Change +2,75 €", text)


def test_taxes_per_rate() -> None:
    receipt = sample_receipt()
    receipt["taxes"].append({"code": "A", "rate": "19", "net": 1000, "tax": 190, "gross": 1190})
    text = _text_after_code_page(render_receipt(receipt))
    assert re.search(r"B 7% +2,10 +0,15 +2,25", text)
    assert re.search(r"A 19% +10,00 +1,90 +11,90", text)


def test_total_is_large_and_bold() -> None:
    data = render_receipt(sample_receipt())
    # ESC ! 0x30 (double width and height), then ESC E 1 (bold), then the total line.
    assert re.search(rb"\x1b!0\x1bE\x01\x1ba\x00SUMME +2,25 \xd5\n", data)


def test_80mm_prints_code128_of_the_receipt_number() -> None:
    data = render_receipt(sample_receipt(), RenderOptions(paper_mm=80))
    payload = b"{Bs1-t1-000042"
    assert b"\x1dkI" + bytes([len(payload)]) + payload in data
    assert b"\x1d(k" not in data


def test_58mm_prints_a_qr_of_the_receipt_number() -> None:
    data = render_receipt(sample_receipt(), RenderOptions(paper_mm=58))
    assert b"\x1d(k\x0f\x001P0s1-t1-000042" in data  # store QR data (cn=49, fn=80, m=48)
    assert b"\x1d(k\x03\x001Q0" in data  # print it
    assert b"\x1dkI" not in data


def test_receipt_ends_with_a_cut() -> None:
    assert render_receipt(sample_receipt()).endswith(b"\x1dV\x01")
    assert render_receipt(sample_receipt(), RenderOptions(partial_cut=False)).endswith(b"\x1dV\x00")


def test_logo_is_sent_as_a_raster_image_that_fits() -> None:
    logo = Image.new("1", (1000, 100), 0)
    data = render_receipt(sample_receipt(), RenderOptions(paper_mm=58, logo=logo))
    at = data.index(b"\x1dv0")
    width_bytes = data[at + 4] | data[at + 5] << 8
    height = data[at + 6] | data[at + 7] << 8
    assert width_bytes * 8 == 384 and height == 38


def test_card_block_shows_only_the_last_four_digits() -> None:
    receipt = sample_receipt()
    card = receipt["payments"][1]["card"]
    assert card is not None
    card["masked_pan"] = "672559******1234"
    text = _text_after_code_page(render_receipt(receipt))
    assert "************1234" in text and "672559" not in text
    assert "Genehm. 123456" in text and "TID 52500038" in text


def _luhn_completed(body: str) -> str:
    """``body`` plus its Luhn check digit; built at run time so no card number is written."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def test_full_card_numbers_are_masked_anywhere_in_the_text() -> None:
    number = _luhn_completed("0" + "31" * 7)  # 16 digits, Luhn-valid, no real issuer
    assert scrub_card_numbers(f"PAN {number} ok") == f"PAN {'*' * 12}{number[-4:]} ok"
    spaced = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    assert scrub_card_numbers(spaced).endswith(number[-4:])
    assert number[:12] not in scrub_card_numbers(spaced).replace(" ", "")
    not_luhn = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert scrub_card_numbers(not_luhn) == not_luhn  # long references survive
    receipt = sample_receipt()
    receipt["card_receipt_lines"] = [f"Karte {number}"]
    data = render_receipt(receipt)
    assert number.encode() not in data and number[-4:].encode() in data


def test_mask_pan_keeps_at_most_four_digits() -> None:
    assert mask_pan("************1234") == "************1234"
    assert mask_pan("672559******1234") == "************1234"
    assert mask_pan("1234") == "1234"


def test_same_model_same_bytes() -> None:
    receipt: Receipt = sample_receipt(extra_lines=5)
    assert render_receipt(receipt) == render_receipt(sample_receipt(extra_lines=5))
