# purpose: GS1 check digits (EAN-13, EAN-8, UPC-A) and the catalog's lookups and refusals.
from __future__ import annotations

import pytest

from terminal.sale import Catalog, Category, Invalid, Item, NotFound, gtin_problem, is_gtin
from terminal.sale.barcode import gs1_check_digit

# Each check digit worked by hand: weights 3,1,3,… from the digit next to the check digit,
# check = (10 - sum % 10) % 10.
GOOD = [
    # 400638133393|1: 3·3+9·1+3·3+3·1+3·3+1·1+8·3+3·1+6·3+0·1+0·3+4·1 = 89 -> 1
    ("4006381333931", "EAN-13"),
    # 590123412345|7: 5·3+4+3·3+2+1·3+4+3·3+2+1·3+0+9·3+5 = 83 -> 7
    ("5901234123457", "EAN-13"),
    # 400000000002|0: 2·3 + 4·1 = 10 -> 0 (the "% 10" wrap)
    ("4000000000020", "EAN-13"),
    # 9638507|4: 7·3+0+5·3+8+3·3+6+9·3 = 86 -> 4
    ("96385074", "EAN-8"),
    # 7351353|7: 3·3+5+3·3+1+5·3+3+7·3 = 63 -> 7
    ("73513537", "EAN-8"),
    # 03600029145|2: 5·3+4+1·3+9+2·3+0+0+0+6·3+3+0 = 58 -> 2
    ("036000291452", "UPC-A"),
]


@pytest.mark.parametrize(("code", "kind"), GOOD)
def test_valid_codes_pass(code: str, kind: str) -> None:
    assert gtin_problem(code) is None
    assert is_gtin(code)


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("400638133393", 1),
        ("590123412345", 7),
        ("400000000002", 0),
        ("9638507", 4),
        ("7351353", 7),
        ("03600029145", 2),
    ],
)
def test_check_digit_by_hand(body: str, check: int) -> None:
    assert gs1_check_digit(body) == check


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("4012345678902", "EAN-13"),  # check digit 1 -> 2
        ("4006381333831", "EAN-13"),  # body 9 -> 8 at weight 1: sum 88, check would be 2
        ("4106381333931", "EAN-13"),  # body 0 -> 1 at weight 3: sum 92, check would be 8
        ("96385075", "EAN-8"),  # check digit 4 -> 5
        ("96385174", "EAN-8"),  # body 0 -> 1 at weight 1: sum 87, check would be 3
        ("036000291453", "UPC-A"),  # check digit 2 -> 3
        ("036000391452", "UPC-A"),  # body 2 -> 3 at weight 3: sum 61, check would be 9
    ],
)
def test_one_wrong_digit_is_caught(code: str, kind: str) -> None:
    problem = gtin_problem(code)
    assert problem is not None
    assert kind in problem
    assert "check digit" in problem
    assert not is_gtin(code)


@pytest.mark.parametrize(
    "code",
    ["9638507", "40063813339", "400638133393100", "400638133393", "4006381333", "1"],
)
def test_wrong_length_is_refused(code: str) -> None:
    problem = gtin_problem(code)
    assert problem is not None
    if len(code) == 12:
        # 12 digits is a UPC-A length: 40063813339|3 has sum 80, so check 0, not 3.
        assert "UPC-A" in problem
    else:
        assert "8, 12 or 13 digits" in problem


@pytest.mark.parametrize(
    "code",
    [
        "400638133393X",
        "ABCDEFGH",
        " 4006381333931",
        "4006381333931\n",
        "4006-381333931",
        "-96385074",
        "",
        "٤٠٠٦٣٨١٣٣٣٩٣١",  # Arabic-Indic digits of a good EAN-13: isdigit() but not ASCII
        "９６３８５０７４",  # fullwidth digits of a good EAN-8
    ],
)
def test_non_digits_are_refused(code: str) -> None:
    problem = gtin_problem(code)
    assert problem == "a product barcode has digits only"
    assert not is_gtin(code)


# -- catalog ---------------------------------------------------------------------------

WINE = Item(
    "wine",
    "Riesling",
    1190,
    "standard",
    barcodes=("4006381333931", "036000291452"),
    category="drinks",
)
BREAD = Item("bread", "Rye Bread", 250, "reduced", barcodes=("96385074",), category="bakery")
APPLES = Item("apples", "Apples", 299, "reduced", unit="kg", category="fruit")


def catalog() -> Catalog:
    return Catalog(
        [WINE, BREAD, APPLES], [Category("drinks", "Drinks")], tax_classes={"standard", "reduced"}
    )


def test_lookup_by_sku_and_every_barcode() -> None:
    cat = catalog()
    assert len(cat) == 3
    assert cat.by_sku("bread") is BREAD
    assert cat.by_barcode("4006381333931") is WINE
    assert cat.by_barcode("036000291452") is WINE
    assert cat.by_barcode("96385074") is BREAD
    assert [i.sku for i in cat] == ["wine", "bread", "apples"]
    assert APPLES.weighed and not BREAD.weighed


def test_unknown_sku_is_not_found() -> None:
    with pytest.raises(NotFound) as err:
        catalog().by_sku("beer")
    assert err.value.code == "unknown_sku"
    assert "'beer'" in err.value.message


def test_unknown_but_valid_barcode_is_not_found() -> None:
    with pytest.raises(NotFound) as err:
        catalog().by_barcode("5901234123457")
    assert err.value.code == "unknown_barcode"
    assert err.value.status == 404


def test_misread_barcode_is_invalid_not_unknown() -> None:
    with pytest.raises(Invalid) as err:
        catalog().by_barcode("4012345678902")
    assert err.value.code == "bad_barcode"
    assert "scan again" in err.value.message
    assert err.value.status == 422


def test_duplicate_sku_is_refused() -> None:
    twin = Item("wine", "Other wine", 990, "standard")
    with pytest.raises(Invalid) as err:
        Catalog([WINE, twin])
    assert err.value.code == "catalog_invalid"
    assert "wine appears twice" in err.value.message


def test_barcode_on_two_items_is_refused() -> None:
    thief = Item("beer", "Beer", 99, "standard", barcodes=("96385074",))
    with pytest.raises(Invalid) as err:
        Catalog([BREAD, thief])
    assert "96385074 belongs to two items" in err.value.message


def test_bad_barcode_in_catalog_is_refused() -> None:
    bad = Item("beer", "Beer", 99, "standard", barcodes=("96385075",))
    with pytest.raises(Invalid) as err:
        Catalog([bad])
    assert "beer" in err.value.message and "EAN-8" in err.value.message


def test_negative_price_is_refused() -> None:
    with pytest.raises(Invalid, match="negative price"):
        Catalog([Item("beer", "Beer", -1, "standard")])


def test_unknown_tax_class_is_refused() -> None:
    odd = Item("beer", "Beer", 99, "luxury")
    with pytest.raises(Invalid) as err:
        Catalog([WINE, odd], tax_classes={"standard", "reduced"})
    assert err.value.code == "catalog_invalid"
    assert "'luxury'" in err.value.message
    # Without a tax setup to check against, the class is taken as given.
    assert Catalog([odd]).by_sku("beer").tax_class == "luxury"


def test_search_by_name_sku_barcode_and_category() -> None:
    cat = catalog()
    assert [i.sku for i in cat.search("bread")] == ["bread"]  # name, case-folded
    assert [i.sku for i in cat.search("APPLES")] == ["apples"]  # sku
    assert [i.sku for i in cat.search("036000291452")] == ["wine"]  # barcode
    assert [i.sku for i in cat.search(category="fruit")] == ["apples"]
    assert [i.sku for i in cat.search("r", limit=1)] == ["wine"]
    assert cat.search("bread", category="drinks") == []


def test_from_dict_loads_and_validates() -> None:
    doc = {
        "categories": [{"id": "bakery", "name": "Bakery"}],
        "items": [
            {
                "sku": "bread",
                "name": "Rye",
                "price": 250,
                "tax_class": "reduced",
                "barcodes": ["96385074"],
                "category": "bakery",
            },
            {"sku": "apples", "name": "Apples", "price": 299, "tax_class": "reduced", "unit": "kg"},
        ],
    }
    cat = Catalog.from_dict(doc, tax_classes={"reduced"})
    assert cat.by_barcode("96385074").price == 250
    assert cat.by_sku("apples").unit == "kg"
    assert cat.categories == (Category("bakery", "Bakery"),)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"sku": "x", "name": "X", "price": 2.5, "tax_class": "reduced"}, "integer"),
        ({"sku": "x", "name": "X", "price": True, "tax_class": "reduced"}, "integer"),
        ({"sku": "x", "name": "X", "price": "250", "tax_class": "reduced"}, "integer"),
        ({"sku": "x", "name": "X", "price": 1, "tax_class": "reduced", "unit": "g"}, "unit"),
        ({"sku": "x", "name": "X", "tax_class": "reduced"}, "missing"),
    ],
)
def test_from_dict_refuses_bad_entries(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(Invalid) as err:
        Catalog.from_dict({"items": [raw]})
    assert err.value.code == "catalog_invalid"
    assert needle in err.value.message


def test_a_upc_a_read_as_ean_13_finds_its_item() -> None:
    # Some scanners send UPC-A 036000291452 as the EAN-13 0036000291452.
    cat = Catalog([Item("upc", "Imported", 100, "standard", barcodes=("036000291452",))])
    assert cat.by_barcode("0036000291452").sku == "upc"
