# purpose: validate the demo catalog JSON and that its generator reproduces it byte for byte.
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DEMO_DIR = Path(__file__).resolve().parents[1] / "terminal" / "demo"
CATALOG = DEMO_DIR / "catalog.json"
GENERATOR = DEMO_DIR / "make_catalog.py"
TAX_CLASSES = {"standard", "reduced", "zero"}


def gs1_check_digit(body: str) -> int:
    """GS1 mod-10: weights 3,1,3,... starting from the digit next to the check digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def load_generator() -> ModuleType:
    name = "tillbox_demo_make_catalog"
    spec = importlib.util.spec_from_file_location(name, GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOG.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def items(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = catalog["items"]
    return result


def test_check_digit_helper() -> None:
    assert gs1_check_digit("400638133393") == 1  # GS1 worked example 4006381333931
    assert gs1_check_digit("03600029145") == 2  # UPC-A 036000291452
    assert gs1_check_digit("9638507") == 4  # EAN-8 96385074


def test_top_level_shape(catalog: dict[str, Any]) -> None:
    assert list(catalog) == ["version", "currency", "categories", "items"]
    assert catalog["version"] == 1
    assert catalog["currency"] == "EUR"
    for cat in catalog["categories"]:
        assert list(cat) == ["id", "name"]


def test_item_keys(items: list[dict[str, Any]]) -> None:
    keys = ["sku", "name", "category", "price", "tax_class", "unit", "barcodes"]
    for item in items:
        assert list(item) == keys, item


def test_enough_items(items: list[dict[str, Any]]) -> None:
    assert len(items) >= 250


def test_unique_skus(items: list[dict[str, Any]]) -> None:
    skus = [item["sku"] for item in items]
    assert len(skus) == len(set(skus))


def test_unique_barcodes(items: list[dict[str, Any]]) -> None:
    codes = [code for item in items for code in item["barcodes"]]
    assert len(codes) == len(set(codes))


def test_barcodes_valid(items: list[dict[str, Any]]) -> None:
    for item in items:
        assert 1 <= len(item["barcodes"]) <= 2, item
        for code in item["barcodes"]:
            assert isinstance(code, str) and code.isdigit(), (item["sku"], code)
            assert len(code) in (8, 12, 13), (item["sku"], code)
            assert int(code[-1]) == gs1_check_digit(code[:-1]), (item["sku"], code)


def test_tax_classes(items: list[dict[str, Any]]) -> None:
    assert {item["tax_class"] for item in items} <= TAX_CLASSES


def test_prices_positive_ints(items: list[dict[str, Any]]) -> None:
    for item in items:
        price = item["price"]
        assert type(price) is int and price > 0, item


def test_units_and_weighed_items(items: list[dict[str, Any]]) -> None:
    assert {item["unit"] for item in items} <= {"each", "kg"}
    assert sum(item["unit"] == "kg" for item in items) >= 20


def test_categories_exist(catalog: dict[str, Any], items: list[dict[str, Any]]) -> None:
    ids = [cat["id"] for cat in catalog["categories"]]
    assert len(ids) == len(set(ids))
    assert {item["category"] for item in items} <= set(ids)


def test_names_have_code_page_characters(items: list[dict[str, Any]]) -> None:
    text = "".join(item["name"] for item in items)
    for ch in "äöüÄÖÜßéè":
        assert ch in text, ch
    text.encode("cp437")  # printable on a plain receipt printer


def test_generator_reproduces_file(tmp_path: Path) -> None:
    gen = load_generator()
    built = gen.build_catalog()
    assert built == json.loads(CATALOG.read_text(encoding="utf-8"))
    out = tmp_path / "catalog.json"
    gen.write(out)
    assert out.read_bytes() == CATALOG.read_bytes()
    gen.write(out)  # and again: deterministic across runs
    assert out.read_bytes() == CATALOG.read_bytes()


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = int(c) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def test_no_barcode_looks_like_a_card_number(items: list[dict[str, Any]]) -> None:
    """Barcodes reach the journal and MQTT; a Luhn-valid 13+ digit one would trip PAN scans."""
    suspicious = [b for item in items for b in item["barcodes"] if len(b) >= 13 and luhn_valid(b)]
    assert suspicious == []
