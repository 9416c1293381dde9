# Catalog, stock and customer documents: checked with named errors, versioned with deltas.
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.catalog import (
    DocumentError,
    gtin_problem,
    parse_catalog_csv,
    parse_catalog_json,
    parse_customers_json,
    parse_quantity,
)
from relay.store import Store
from tests.relay.pg import db_url_fixture, pg_cluster_fixture  # noqa: F401

DEMO = Path(__file__).parents[2] / "terminal" / "demo" / "catalog.json"
HEADER = "sku,name,price,tax_class,unit,barcodes,category\n"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def demo() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DEMO.read_text(encoding="utf-8"))
    return doc


def problems(err: pytest.ExceptionInfo[DocumentError]) -> list[str]:
    return err.value.problems


def test_demo_catalog_passes_unchanged() -> None:
    doc = parse_catalog_json(DEMO.read_text(encoding="utf-8"), "demo")
    assert doc.items == demo()["items"]
    assert doc.categories == demo()["categories"] and doc.currency == "EUR"


def test_gs1_check_digits() -> None:
    assert gtin_problem("4006381333931") is None  # EAN-13
    assert gtin_problem("96385074") is None  # EAN-8
    assert gtin_problem("036000291452") is None  # UPC-A
    assert "check digit is wrong (expected 1)" in str(gtin_problem("4012345678902"))
    assert "8, 12 or 13 digits" in str(gtin_problem("12345"))
    assert "digits only" in str(gtin_problem("40063813339X1"))


def test_json_errors_name_the_item_and_field() -> None:
    doc = demo()
    doc["items"][0]["price"] = 0
    doc["items"][1]["barcodes"] = ["4012345678902"]
    doc["items"][2]["sku"] = doc["items"][3]["sku"]
    doc["items"][4]["barcodes"] = list(doc["items"][5]["barcodes"])
    doc["items"][6]["unit"] = "litre"
    doc["items"][7]["category"] = "nowhere"
    doc["items"][8]["colour"] = "red"
    with pytest.raises(DocumentError) as err:
        parse_catalog_json(json.dumps(doc), "cat.json")
    found = "\n".join(problems(err))
    assert "items[0] (sku BK-0001), field price: a positive whole number" in found
    assert "items[1] (sku BK-0002), field barcodes: 4012345678902: the EAN-13 check digit" in found
    assert f"sku: {doc['items'][3]['sku']} is also used by" in found
    assert f"barcodes: {doc['items'][5]['barcodes'][0]} is also used by" in found
    assert "field unit: each or kg" in found
    assert "'nowhere' is not in `categories`" in found
    assert "unknown field(s) colour" in found
    assert str(err.value).startswith("cat.json: 7 problem(s), nothing was loaded")


def test_csv_loads_and_names_row_and_column() -> None:
    good = HEADER + "A-1,Brot,249,reduced,each,4006381333931 96385074,bakery\n"
    good += "A-2,Äpfel,299,reduced,kg,,produce\n"
    doc = parse_catalog_csv(good, "c.csv", categories=[{"id": "bakery", "name": "Backwaren"}])
    assert doc.items[0] == {
        "sku": "A-1",
        "name": "Brot",
        "category": "bakery",
        "price": 249,
        "tax_class": "reduced",
        "unit": "each",
        "barcodes": ["4006381333931", "96385074"],
    }
    assert doc.categories == [
        {"id": "bakery", "name": "Backwaren"},
        {"id": "produce", "name": "produce"},
    ]
    bad = HEADER + "A-1,Brot,2.49,reduced,each,4012345678902,bakery\n"
    bad += "A-1,Milch,-5,reduced,each,4006381333931,\n"
    bad += ",Käse,100,,each,,\n"
    with pytest.raises(DocumentError) as err:
        parse_catalog_csv(bad, "c.csv")
    assert problems(err) == [
        "row 2, column price: a positive whole number of minor units (199 for 1.99)",
        "row 2, column barcodes: 4012345678902: the EAN-13 check digit is wrong (expected 1)",
        "row 3, column price: a positive whole number of minor units (199 for 1.99)",
        "row 4, column sku: 1-64 letters, digits, '.', '_', '/' or '-'",
        "row 4, column tax_class: a tax class name like standard or reduced",
    ]
    dup = HEADER + "A-1,Brot,1,reduced,each,4006381333931,\nA-1,Bröt,2,reduced,each,96385074,\n"
    dup += "A-3,Milch,3,reduced,each,96385074,\n"
    with pytest.raises(DocumentError) as err:
        parse_catalog_csv(dup, "c.csv")
    assert problems(err) == [
        "row 3, sku: A-1 is also used by row 2",
        "row 4, barcodes: 96385074 is also used by row 3",
    ]


def test_csv_header_must_have_the_columns() -> None:
    with pytest.raises(DocumentError) as err:
        parse_catalog_csv("sku,name,cost\nA,B,1\n", "c.csv")
    assert problems(err) == [
        "row 1 (header): missing column(s) price, tax_class, unit, barcodes, category",
        "row 1 (header): unknown column(s) cost",
    ]


def test_quantities_are_canonical_decimal_strings() -> None:
    assert [parse_quantity(q) for q in ["12", "12.0", "1.250", "-3", "0.0", "1e3"]] == [
        "12",
        "12",
        "1.25",
        "-3",
        "0",
        "1000",
    ]
    for bad in ["x", "nan", "inf", "1.0000001"]:
        with pytest.raises(ValueError):
            parse_quantity(bad)


def test_customers_document_is_checked() -> None:
    good = [{"id": "c1", "name": "Ada", "email": "ada@example.org", "phone": ""}]
    assert parse_customers_json(json.dumps(good), "c.json")[0]["loyalty_points"] == 0
    bad = [{"id": "c1", "marketing_consent": "yes", "loyalty_points": -1}, {"id": "c1"}, 7]
    with pytest.raises(DocumentError) as err:
        parse_customers_json(json.dumps(bad), "c.json")
    assert problems(err) == [
        "customers[0], field marketing_consent: true or false",
        "customers[0], field loyalty_points: a whole number, 0 or more",
        "customers[1], field id: 'c1' appears twice",
        "customers[2]: must be an object",
    ]


def test_catalog_versions_and_deltas(store: Store) -> None:
    doc = parse_catalog_json(DEMO.read_text(encoding="utf-8"), "demo")
    first = store.put_catalog("s1", doc)
    assert first is not None and first.version == 1
    assert store.put_catalog("s1", doc) is None  # nothing changed, no new version
    changed = demo()
    changed["items"][0]["price"] += 10  # a price change is a delta
    removed = changed["items"].pop(1)
    changed["items"].append(
        {
            "sku": "ZZ-0001",
            "name": "Neu",
            "category": "bakery",
            "price": 100,
            "tax_class": "reduced",
            "unit": "each",
            "barcodes": ["4006381333931"],
        }
    )
    second = store.put_catalog("s1", parse_catalog_json(json.dumps(changed), "v2"))
    assert second is not None and second.version == 2
    with store.transaction() as conn:
        delta = store.delta(conn, "s1", "catalog", 2)
        snapshot = store.snapshot(conn, "s1", "catalog")
        first_delta = store.delta(conn, "s1", "catalog", 1)
    assert delta == {
        "schema": "tillbox.catalog-delta/1",
        "base_version": 1,
        "version": 2,
        "upsert": [changed["items"][0], changed["items"][-1]],
        "delete": [removed["sku"]],
    }
    assert first_delta["base_version"] == 0 and len(first_delta["upsert"]) == len(doc.items)
    assert snapshot == {
        "schema": "tillbox.catalog/1",
        "version": 2,
        "currency": "EUR",
        "categories": changed["categories"],
        "items": changed["items"],  # in the file's order, exactly the file's item objects
    }
    other = store.put_catalog("s2", doc)  # stores are independent
    assert other is not None and other.version == 1


def test_stock_and_customer_versions(store: Store) -> None:
    assert store.set_stock("s1", {"BK-0001": "12"}) is not None
    assert store.set_stock("s1", {"BK-0001": "12"}) is None
    change = store.set_stock("s1", {"BK-0001": "11", "BK-0002": "1.5"})
    assert change is not None and change.version == 2
    people = [
        {"id": "c1", "name": "Ada", "email": "", "phone": "", "marketing_consent": True},
        {"id": "c2", "name": "Bob", "email": "", "phone": "", "loyalty_points": 5},
    ]
    assert store.put_customers("s1", parse_customers_json(json.dumps(people), "p")) is not None
    people[0]["name"] = "Ada L."
    people.pop(1)
    assert store.put_customers("s1", parse_customers_json(json.dumps(people), "p")) is not None
    with store.transaction() as conn:
        stock = store.snapshot(conn, "s1", "stock")
        stock_delta = store.delta(conn, "s1", "stock", 2)
        crm = store.snapshot(conn, "s1", "customers")
        crm_delta = store.delta(conn, "s1", "customers", 2)
    assert stock == {
        "schema": "tillbox.stock/1",
        "version": 2,
        "levels": {"BK-0001": "11", "BK-0002": "1.5"},
    }
    assert stock_delta["levels"] == {"BK-0001": "11", "BK-0002": "1.5"}
    assert stock_delta["base_version"] == 1
    assert crm == {
        "schema": "tillbox.customers/1",
        "version": 2,
        "customers": [
            {
                "id": "c1",
                "name": "Ada L.",
                "email": "",
                "phone": "",
                "marketing_consent": True,
                "loyalty_points": 0,
            }
        ],
    }
    assert crm_delta["delete"] == ["c2"] and [c["id"] for c in crm_delta["upsert"]] == ["c1"]
