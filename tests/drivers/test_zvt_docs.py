# Keeps docs/zvt.md honest and proves no file of the ZVT work holds a real-looking card number.
from __future__ import annotations

import re
from pathlib import Path

from drivers.zvt import Outcome, ZvtTimeouts
from drivers.zvt.codes import RESULT_MESSAGES, classify
from drivers.zvt.redact import luhn_valid

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "zvt.md"


def test_every_result_code_is_documented_with_its_message() -> None:
    text = DOC.read_text()
    for code, message in RESULT_MESSAGES.items():
        row = f"| `{code:02X}` | {classify(code).value} | {message} |"
        assert row in text, f"docs/zvt.md lacks {row}"


def test_outcomes_and_timeouts_are_documented() -> None:
    text = DOC.read_text()
    for outcome in Outcome:
        assert f"`{outcome.value}`" in text
    for name in ZvtTimeouts.__dataclass_fields__:
        assert f"`ZvtTimeouts.{name}`" in text


def zvt_files() -> list[Path]:
    files = [*sorted((ROOT / "drivers" / "zvt").glob("*.py")), ROOT / "hw-sim" / "hwsim" / "zvt.py"]
    files += sorted((ROOT / "tests").glob("*/test_zvt_*.py"))
    files.append(DOC)
    return files


# A card number as it would be written: 13-19 digits in one run, or in groups of 4.
CARD_LIKE = re.compile(r"(?<!\d)(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?)(?![\d])")


def card_numbers_in(text: str) -> list[str]:
    found = []
    for match in CARD_LIKE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(digits)
    return found


def test_no_file_holds_a_luhn_valid_card_number() -> None:
    files = zvt_files()
    assert len(files) >= 15
    offenders = [f"{p.name}: {d[:6]}..." for p in files for d in card_numbers_in(p.read_text())]
    assert offenders == []


def test_card_scan_finds_what_it_should() -> None:
    prefix = "400012345678901"
    valid = next(prefix + c for c in "0123456789" if luhn_valid(prefix + c))
    grouped = " ".join(valid[i : i + 4] for i in range(0, 16, 4))
    assert card_numbers_in(f"pan {valid};") == [valid]
    assert card_numbers_in(f"pan {grouped} end") == [valid]
    assert card_numbers_in("04 00 00 00 00 12 34 " + " ".join(valid)) == []
