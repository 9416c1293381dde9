# The pure sale domain: catalog, pricing and tax, tenders, refunds, shifts and reports.
from .barcode import gtin_problem, is_gtin
from .catalog import Catalog, Category, Item
from .errors import Conflict, Forbidden, Invalid, NotFound, SaleError
from .money import allocate, cash_round, format_money, round_minor
from .pricing import Discount, TaxClass, TaxSetup, Totals, price
from .till import Event, Override, Policy, Sale, Till, parse_quantity

__all__ = [
    "Catalog",
    "Category",
    "Conflict",
    "Discount",
    "Event",
    "Forbidden",
    "Invalid",
    "Item",
    "NotFound",
    "Override",
    "Policy",
    "Sale",
    "SaleError",
    "TaxClass",
    "TaxSetup",
    "Till",
    "Totals",
    "allocate",
    "cash_round",
    "format_money",
    "gtin_problem",
    "is_gtin",
    "parse_quantity",
    "price",
    "round_minor",
]
