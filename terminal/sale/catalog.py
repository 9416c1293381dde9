# The catalog the box sells from: items by SKU and by barcode.
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .barcode import gtin_problem
from .errors import Invalid, NotFound

Unit = Literal["each", "kg"]


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    name: str
    price: int  # minor units per unit (per kg for weighed items)
    tax_class: str
    unit: Unit = "each"
    barcodes: tuple[str, ...] = ()
    category: str = ""

    @property
    def weighed(self) -> bool:
        return self.unit == "kg"


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: str


class Catalog:
    """An immutable catalog; a new one replaces it whole (down-sync applies snapshots)."""

    def __init__(
        self,
        items: Iterable[Item],
        categories: Iterable[Category] = (),
        tax_classes: Iterable[str] | None = None,
    ) -> None:
        self.categories = tuple(categories)
        self._by_sku: dict[str, Item] = {}
        self._by_barcode: dict[str, Item] = {}
        known_tax = set(tax_classes) if tax_classes is not None else None
        for item in items:
            if item.sku in self._by_sku:
                raise Invalid("catalog_invalid", f"SKU {item.sku} appears twice in the catalog")
            if item.price < 0:
                raise Invalid("catalog_invalid", f"item {item.sku} has a negative price")
            if known_tax is not None and item.tax_class not in known_tax:
                raise Invalid(
                    "catalog_invalid",
                    f"item {item.sku} uses tax class {item.tax_class!r}, which the store's "
                    f"tax setup does not define",
                )
            for code in item.barcodes:
                problem = gtin_problem(code)
                if problem:
                    raise Invalid("catalog_invalid", f"item {item.sku}: barcode {code}: {problem}")
                if code in self._by_barcode:
                    raise Invalid("catalog_invalid", f"barcode {code} belongs to two items")
                self._by_barcode[code] = item
            self._by_sku[item.sku] = item

    def __len__(self) -> int:
        return len(self._by_sku)

    def __iter__(self) -> Iterator[Item]:
        return iter(self._by_sku.values())

    def by_sku(self, sku: str) -> Item:
        try:
            return self._by_sku[sku]
        except KeyError:
            raise NotFound(
                "unknown_sku", f"No item has SKU {sku!r}. Search the item by name instead."
            ) from None

    def by_barcode(self, code: str) -> Item:
        problem = gtin_problem(code)
        if problem:
            raise Invalid("bad_barcode", f"Barcode {code!r} is not valid: {problem}.")
        try:
            if code not in self._by_barcode and len(code) == 13 and code[0] == "0":
                code = code[1:]  # a UPC-A read as EAN-13 with its leading zero
            return self._by_barcode[code]
        except KeyError:
            raise NotFound(
                "unknown_barcode",
                f"No item has barcode {code}. Key the item in "
                "by name, or ask a manager to add it to the catalog.",
            ) from None

    def search(self, text: str = "", category: str = "", limit: int = 50) -> list[Item]:
        needle = text.casefold().strip()
        found: list[Item] = []
        for item in self._by_sku.values():
            if category and item.category != category:
                continue
            if (
                needle
                and needle not in item.name.casefold()
                and needle != item.sku.casefold()
                and needle not in item.barcodes
            ):
                continue
            found.append(item)
            if len(found) >= limit:
                break
        return found

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], tax_classes: Iterable[str] | None = None) -> Catalog:
        """Load the catalog document format (see docs/catalog.md)."""
        try:
            items = [
                Item(
                    sku=str(raw["sku"]),
                    name=str(raw["name"]),
                    price=_int(raw["price"], f"item {raw.get('sku')}: price"),
                    tax_class=str(raw["tax_class"]),
                    unit=_unit(raw.get("unit", "each"), str(raw.get("sku"))),
                    barcodes=tuple(str(b) for b in raw.get("barcodes", ())),
                    category=str(raw.get("category", "")),
                )
                for raw in doc["items"]
            ]
            categories = [Category(str(c["id"]), str(c["name"])) for c in doc.get("categories", ())]
        except (KeyError, TypeError) as err:
            raise Invalid("catalog_invalid", f"catalog entry is missing {err}") from err
        return cls(items, categories, tax_classes)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("catalog_invalid", f"{what} must be an integer of minor units")
    return value


def _unit(value: Any, sku: str) -> Unit:
    if value == "each":
        return "each"
    if value == "kg":
        return "kg"
    raise Invalid("catalog_invalid", f"item {sku}: unit must be 'each' or 'kg'")
