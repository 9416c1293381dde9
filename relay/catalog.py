# Catalog, stock and customer files an admin loads, parsed and checked before the store sees them.
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

CSV_COLUMNS = ("sku", "name", "price", "tax_class", "unit", "barcodes", "category")
UNITS = ("each", "kg")
MAX_PROBLEMS = 50
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_GTIN = {8: "EAN-8", 12: "UPC-A", 13: "EAN-13"}


class DocumentError(ValueError):
    """A document an admin loads is not usable; `problems` name row/item and column/field."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        more = len(problems) - MAX_PROBLEMS
        shown = "\n".join(f"  {p}" for p in problems[:MAX_PROBLEMS])
        tail = f"\n  … and {more} more" if more > 0 else ""
        super().__init__(
            f"{source}: {len(problems)} problem(s), nothing was loaded:\n{shown}{tail}"
        )


@dataclass(frozen=True, slots=True)
class CatalogDoc:
    """A checked catalog: items exactly in the terminal's catalog.json item format."""

    currency: str
    categories: list[dict[str, str]]
    items: list[dict[str, Any]] = field(default_factory=list)


def gs1_check_digit(body: str) -> int:
    """GS1 check digit for the digits before it (weights 3,1,3,… from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin_problem(code: str) -> str | None:
    """Why `code` is not a valid EAN-13, EAN-8 or UPC-A, or None when it is."""
    if not code.isascii() or not code.isdigit():
        return "a barcode has digits only"
    kind = _GTIN.get(len(code))
    if kind is None:
        return "a barcode has 8, 12 or 13 digits"
    if gs1_check_digit(code[:-1]) != int(code[-1]):
        return f"the {kind} check digit is wrong (expected {gs1_check_digit(code[:-1])})"
    return None


def parse_catalog_json(text: str, source: str) -> CatalogDoc:
    """A catalog document in the terminal's format (`version` in the file is ignored)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DocumentError(source, [f"not valid JSON: {err}"]) from err
    if not isinstance(doc, dict):
        raise DocumentError(source, ["the document must be a JSON object with an `items` list"])
    problems: list[str] = []
    unknown = doc.keys() - {"version", "currency", "categories", "items"}
    if unknown:
        problems.append(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    currency = doc.get("currency", "EUR")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        problems.append("currency: use three capital letters (ISO 4217), e.g. EUR")
    categories = _categories(doc.get("categories", []), problems)
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        problems.append("items: must be a list of item objects")
        raw_items = []
    items: list[dict[str, Any]] = []
    for i, raw in enumerate(raw_items):
        sku = raw.get("sku") if isinstance(raw, dict) else None
        where = f"items[{i}]" + (f" (sku {sku})" if isinstance(sku, str) else "")
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be an object")
            continue
        extra = raw.keys() - set(CSV_COLUMNS)
        if extra:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        item = _item(raw, _at(f"{where}, field "), problems)
        if item is not None:
            items.append(item)
    known = {c["id"] for c in categories}
    for item in items:
        if item["category"] and known and item["category"] not in known:
            problems.append(
                f"items (sku {item['sku']}), field category: {item['category']!r} is not in "
                "`categories`"
            )
    _unique(items, (f"items (sku {it['sku']})" for it in items), problems)
    if problems:
        raise DocumentError(source, problems)
    return CatalogDoc(currency=str(currency), categories=categories, items=items)


def parse_catalog_csv(
    text: str,
    source: str,
    *,
    currency: str = "EUR",
    categories: Sequence[Mapping[str, str]] = (),
) -> CatalogDoc:
    """CSV with a header row naming CSV_COLUMNS; barcodes are space-separated.

    CSV has no category names: known ids keep the names given in `categories` (the
    previous version's), a new id is named after itself.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    problems: list[str] = []
    if missing:
        problems.append(f"row 1 (header): missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"row 1 (header): unknown column(s) {', '.join(unknown)}")
    if problems:
        raise DocumentError(source, problems)
    reader.fieldnames = header
    items: list[dict[str, Any]] = []
    wheres: list[str] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append(f"row {line}: more cells than columns in the header")
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(cells.values()):
            continue
        raw: dict[str, Any] = dict(cells)
        raw["price"] = _csv_int(cells["price"])
        raw["barcodes"] = cells["barcodes"].split()
        item = _item(raw, _at(f"row {line}, column "), problems)
        if item is not None:
            items.append(item)
            wheres.append(f"row {line}")
    if not items and not problems:
        problems.append("no item rows after the header")
    _unique(items, wheres, problems)
    if problems:
        raise DocumentError(source, problems)
    names = {c["id"]: c["name"] for c in categories}
    used: list[str] = []
    for item in items:
        if item["category"] and item["category"] not in used:
            used.append(item["category"])
    known = [{"id": c["id"], "name": c["name"]} for c in categories if c["id"] in used]
    new = [{"id": cid, "name": names.get(cid, cid)} for cid in used if cid not in names]
    return CatalogDoc(currency=currency, categories=known + new, items=items)


def parse_quantity(text: str) -> str:
    """A stock quantity as a canonical decimal string ("12", "1.25", "-3")."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number; write it like 12 or 1.25") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    if value.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValueError(f"{text!r} has more than 6 decimals")
    if abs(value) >= Decimal(10) ** 12:
        raise ValueError(f"{text!r} is too large for a stock level")
    return quantity_text(value)


def quantity_text(value: Decimal) -> str:
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def parse_customers_json(text: str, source: str) -> list[dict[str, Any]]:
    """A JSON list of customers (or {"customers": [...]}) in the down-sync format."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DocumentError(source, [f"not valid JSON: {err}"]) from err
    if isinstance(doc, dict) and set(doc) <= {"schema", "version", "customers"}:
        doc = doc.get("customers")
    if not isinstance(doc, list):
        raise DocumentError(source, ["the document must be a list of customer objects"])
    problems: list[str] = []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc):
        where = f"customers[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be an object")
            continue
        fields = {"id", "name", "email", "phone", "marketing_consent", "loyalty_points"}
        extra = raw.keys() - fields
        if extra:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        cid = raw.get("id")
        if not isinstance(cid, str) or not 1 <= len(cid) <= 64:
            problems.append(f"{where}, field id: a string of 1-64 characters")
            continue
        if cid in seen:
            problems.append(f"{where}, field id: {cid!r} appears twice")
        seen.add(cid)
        customer: dict[str, Any] = {"id": cid}
        for key in ("name", "email", "phone"):
            value = raw.get(key, "")
            if not isinstance(value, str) or len(value) > 200:
                problems.append(f"{where}, field {key}: a string of at most 200 characters")
            customer[key] = value
        consent = raw.get("marketing_consent", False)
        if not isinstance(consent, bool):
            problems.append(f"{where}, field marketing_consent: true or false")
        customer["marketing_consent"] = consent
        points = raw.get("loyalty_points", 0)
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            problems.append(f"{where}, field loyalty_points: a whole number, 0 or more")
        customer["loyalty_points"] = points
        out.append(customer)
    if problems:
        raise DocumentError(source, problems)
    return out


def _categories(raw: Any, problems: list[str]) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        problems.append("categories: must be a list of {id, name} objects")
        return []
    out: list[dict[str, str]] = []
    for i, c in enumerate(raw):
        ok = (
            isinstance(c, dict)
            and set(c) == {"id", "name"}
            and isinstance(c["id"], str)
            and bool(_CATEGORY.match(c["id"]))
            and isinstance(c["name"], str)
            and bool(c["name"].strip())
        )
        if not ok:
            problems.append(f"categories[{i}]: must be {{id, name}} with a short id and a name")
            continue
        if any(o["id"] == c["id"] for o in out):
            problems.append(f"categories[{i}]: id {c['id']!r} appears twice")
        out.append({"id": c["id"], "name": c["name"]})
    return out


def _at(prefix: str) -> Callable[[str], str]:
    return lambda name: prefix + name


def _item(
    raw: Mapping[str, Any], at: Callable[[str], str], problems: list[str]
) -> dict[str, Any] | None:
    """One item in the catalog.json item format, or None after naming its problems."""
    before = len(problems)
    sku = raw.get("sku")
    if not isinstance(sku, str) or not _SKU.match(sku):
        problems.append(f"{at('sku')}: 1-64 letters, digits, '.', '_', '/' or '-'")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        problems.append(f"{at('name')}: a name of 1-120 characters")
    price = raw.get("price")
    if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
        problems.append(f"{at('price')}: a positive whole number of minor units (199 for 1.99)")
    tax_class = raw.get("tax_class")
    if not isinstance(tax_class, str) or not _NAME.match(tax_class):
        problems.append(f"{at('tax_class')}: a tax class name like standard or reduced")
    unit = raw.get("unit", "each")
    if unit not in UNITS:
        problems.append(f"{at('unit')}: each or kg")
    barcodes = raw.get("barcodes", [])
    if not isinstance(barcodes, list) or not all(isinstance(b, str) for b in barcodes):
        problems.append(f"{at('barcodes')}: a list of barcode strings")
        barcodes = []
    for code in barcodes:
        problem = gtin_problem(code)
        if problem:
            problems.append(f"{at('barcodes')}: {code}: {problem}")
    if len(set(barcodes)) != len(barcodes):
        problems.append(f"{at('barcodes')}: the same barcode is listed twice")
    category = raw.get("category", "")
    if not isinstance(category, str) or (category and not _CATEGORY.match(category)):
        problems.append(f"{at('category')}: a category id (letters, digits, '-', '_')")
    if len(problems) > before:
        return None
    return {
        "sku": sku,
        "name": name,
        "category": category,
        "price": price,
        "tax_class": tax_class,
        "unit": unit,
        "barcodes": list(barcodes),
    }


def _unique(items: Sequence[dict[str, Any]], wheres: Iterable[str], problems: list[str]) -> None:
    skus: dict[str, str] = {}
    codes: dict[str, str] = {}
    for item, where in zip(items, wheres):
        if item["sku"] in skus:
            problems.append(f"{where}, sku: {item['sku']} is also used by {skus[item['sku']]}")
        skus.setdefault(item["sku"], where)
        for code in item["barcodes"]:
            if code in codes:
                problems.append(f"{where}, barcodes: {code} is also used by {codes[code]}")
            codes.setdefault(code, where)


def _csv_int(text: str) -> Any:
    """CSV prices are whole minor units; keep anything else as text so the check names it."""
    return int(text) if re.fullmatch(r"-?\d{1,12}", text) else text
