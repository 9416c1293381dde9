# purpose: deterministic generator for the Tillbox demo catalog (terminal/demo/catalog.json).
"""Generate the demo catalog of a German corner shop / delicatessen.

Run ``python terminal/demo/make_catalog.py`` to rewrite ``catalog.json`` next to this
script, or pass ``--out PATH`` to write elsewhere. The output depends only on the data
below and a fixed random seed, so repeated runs produce byte-identical files. All
barcodes are made up (random manufacturer and item numbers) but carry correct GS1 check
digits; weighed items use in-store EAN-13 codes starting with ``21``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

SEED = 20240601
VERSION = 1
CURRENCY = "EUR"
DEFAULT_OUT = Path(__file__).resolve().with_name("catalog.json")
TAX_CLASSES = ("standard", "reduced", "zero")
# Receipt printers in the field often only speak code page 437/858.
PRINTER_CODEPAGE = "cp437"


class Item(NamedTuple):
    """One catalog line before SKU and barcodes are assigned."""

    name: str
    price: int  # cents per unit (per kg when ``unit == "kg"``)
    unit: str = "each"
    tax: str | None = None  # None: the category's default tax class


class Category(NamedTuple):
    id: str
    name: str
    prefix: str  # SKU prefix
    tax: str  # default tax class
    items: tuple[Item, ...]


def kg(name: str, price: int, tax: str | None = None) -> Item:
    """A weighed item priced in cents per kilogram."""
    return Item(name, price, "kg", tax)


E = Item
STD = "standard"
RED = "reduced"
ZERO = "zero"

CATEGORIES: tuple[Category, ...] = (
    Category(
        "bakery",
        "Backwaren",
        "BK",
        RED,
        (
            E("Roggenbrötchen", 45),
            E("Weizenbrötchen", 35),
            E("Kürbiskernbrötchen", 75),
            E("Überbackenes Käsebrötchen", 145),
            E("Mehrkornbrötchen", 65),
            E("Laugenbrezel", 85),
            E("Laugenstange", 95),
            E("Croissant", 125),
            E("Pain au chocolat", 145),
            E("Baguette", 189),
            E("Bauernbrot 1000 g", 449),
            E("Roggenmischbrot 750 g", 379),
            E("Vollkornbrot 500 g", 329),
            E("Dinkelbrot 500 g", 389),
            E("Weißbrot 500 g", 249),
            E("Toastbrot 500 g", 149),
            E("Vollkorntoast 500 g", 179),
            E("Butterkuchen Stück", 160),
            E("Bienenstich Stück", 220),
            E("Streuselschnecke", 180),
            E("Berliner", 120),
            E("Apfeltasche", 150),
            E("Käsekuchen Stück", 250),
            E("Franzbrötchen", 170),
            E("Rosinenstuten 400 g", 299),
            E("Zwieback 225 g", 159),
            E("Knäckebrot 250 g", 139),
            E("Pumpernickel 500 g", 189),
            E("Brioche 400 g", 279),
            E("Madeleines 250 g", 249),
        ),
    ),
    Category(
        "produce",
        "Obst & Gemüse",
        "OG",
        RED,
        (
            kg("Äpfel Elstar", 299),
            kg("Äpfel Braeburn", 279),
            kg("Bananen", 169),
            kg("Birnen Conference", 329),
            kg("Orangen", 249),
            kg("Clementinen", 299),
            kg("Tomaten", 349),
            kg("Rispentomaten", 399),
            kg("Kartoffeln festkochend", 149),
            kg("Süßkartoffeln", 399),
            kg("Zwiebeln gelb", 179),
            kg("Karotten", 149),
            kg("Paprika rot", 599),
            kg("Zucchini", 299),
            kg("Champignons braun", 699),
            kg("Weintrauben hell kernlos", 449),
            E("Salatgurke", 79),
            E("Eisbergsalat", 129),
            E("Kopfsalat", 99),
            E("Blumenkohl", 249),
            E("Brokkoli 500 g", 179),
            E("Knoblauch 3 Knollen", 99),
            E("Ingwer 100 g", 79),
            E("Avocado", 129),
            E("Mango", 179),
            E("Ananas", 249),
            E("Kiwi", 39),
            E("Zitronen 500 g Netz", 149),
            E("Limetten 4 Stück", 149),
            E("Heidelbeeren 125 g", 249),
            E("Himbeeren 125 g", 299),
            E("Erdbeeren 500 g", 399),
            E("Cherrytomaten 250 g", 179),
            E("Feldsalat 150 g", 229),
            E("Rucola 125 g", 149),
            E("Radieschen Bund", 89),
            E("Frühlingszwiebeln Bund", 79),
            E("Petersilie Bund", 99),
            E("Schnittlauch Bund", 99),
            E("Basilikum Topf", 199),
            E("Kohlrabi", 99),
            E("Lauch Stange", 99),
            E("Staudensellerie", 149),
            E("Weißkohl", 149),
            E("Rotkohl", 149),
            E("Fenchel", 129),
        ),
    ),
    Category(
        "dairy",
        "Molkerei",
        "MO",
        RED,
        (
            E("Vollmilch 3,5 % 1 l", 115),
            E("Fettarme Milch 1,5 % 1 l", 105),
            E("H-Milch 3,5 % 1 l", 109),
            E("Haferdrink 1 l", 199, tax=STD),
            E("Buttermilch 500 g", 79),
            E("Schlagsahne 30 % 200 g", 109),
            E("Saure Sahne 200 g", 69),
            E("Schmand 200 g", 89),
            E("Crème fraîche 200 g", 139),
            E("Joghurt natur 3,5 % 500 g", 89),
            E("Griechischer Joghurt 500 g", 199),
            E("Fruchtjoghurt Erdbeere 150 g", 49),
            E("Speisequark 20 % 500 g", 129),
            E("Magerquark 500 g", 99),
            E("Kräuterquark 200 g", 119),
            E("Deutsche Markenbutter 250 g", 239),
            E("Irische Butter 250 g", 299),
            E("Margarine 500 g", 189),
            E("Eier Freiland 10 Stück", 349),
            E("Bio-Eier 6 Stück", 299),
            E("Frischkäse natur 200 g", 129),
            E("Mozzarella 125 g", 89),
            E("Burrata 125 g", 249),
            E("Feta 200 g", 199),
            E("Hüttenkäse 200 g", 119),
            E("Camembert 125 g", 169),
            E("Gouda Scheiben 150 g", 179),
            E("Emmentaler gerieben 200 g", 199),
            E("Parmigiano Reggiano 150 g", 399),
            E("Milchreis 200 g", 69),
            E("Kefir 500 g", 129),
            E("Skyr 450 g", 179),
            E("Schokopudding 4er 500 g", 149),
            E("Chèvre frais 150 g", 299),
            E("Ayran 250 ml", 69),
            E("Kakaotrunk 500 ml", 99),
        ),
    ),
    Category(
        "drinks",
        "Getränke",
        "GT",
        STD,
        (
            E("Mineralwasser still 1,5 l", 49),
            E("Mineralwasser classic 0,7 l", 69),
            E("Mineralwasser medium 1 l", 79),
            E("Apfelschorle 0,5 l", 119),
            E("Apfelsaft naturtrüb 1 l", 199),
            E("Orangensaft 1 l", 229),
            E("Multivitaminsaft 1 l", 189),
            E("Traubensaft rot 1 l", 249),
            E("Tomatensaft 1 l", 199),
            E("Cola 0,5 l", 139),
            E("Cola zero 0,5 l", 139),
            E("Zitronenlimonade 0,33 l", 119),
            E("Holunderblüten-Limonade 0,33 l", 169),
            E("Eistee Pfirsich 1,5 l", 129),
            E("Energy-Drink 0,25 l", 149),
            E("Mate-Limonade 0,5 l", 199),
            E("Pils 0,5 l", 99),
            E("Weißbier 0,5 l", 119),
            E("Helles 0,5 l", 109),
            E("Kölsch 0,33 l", 99),
            E("Alkoholfreies Bier 0,5 l", 99),
            E("Radler 0,5 l", 99),
            E("Riesling trocken 0,75 l", 699),
            E("Grauburgunder 0,75 l", 799),
            E("Spätburgunder 0,75 l", 899),
            E("Rosé de Provence 0,75 l", 999),
            E("Côtes du Rhône rouge 0,75 l", 1099),
            E("Crémant de Loire brut 0,75 l", 1299),
            E("Sekt trocken 0,75 l", 549),
            E("Prosecco frizzante 0,75 l", 699),
            E("Kornbrand 0,7 l", 899),
            E("Williamsbirnenbrand 0,5 l", 2199),
            E("Kaffee gemahlen 500 g", 699, tax=RED),
            E("Espresso ganze Bohne 1 kg", 1799, tax=RED),
            E("Café crème Bohnen 1 kg", 1699, tax=RED),
            E("Schwarzer Tee 25 Beutel", 199, tax=RED),
            E("Pfefferminztee 25 Beutel", 169, tax=RED),
            E("Kamillentee 25 Beutel", 149, tax=RED),
            E("Grüner Tee 20 Beutel", 249, tax=RED),
            E("Kakaopulver 400 g", 349, tax=RED),
        ),
    ),
    Category(
        "sweets",
        "Süßwaren",
        "SW",
        RED,
        (
            E("Vollmilchschokolade 100 g", 129),
            E("Zartbitterschokolade 70 % 100 g", 169),
            E("Weiße Schokolade 100 g", 139),
            E("Haselnussschokolade 100 g", 149),
            E("Schokoriegel 50 g", 89),
            E("Fruchtgummi Bärchen 200 g", 119),
            E("Lakritzschnecken 200 g", 129),
            E("Salzlakritz 200 g", 149),
            E("Marshmallows 200 g", 179),
            E("Kaugummi Minze 10 Stück", 99),
            E("Pfefferminzbonbons 50 g", 119),
            E("Karamellbonbons 150 g", 149),
            E("Butterkekse 200 g", 119),
            E("Schokokekse 300 g", 199),
            E("Waffelröllchen 100 g", 179),
            E("Lebkuchen 200 g", 249),
            E("Spekulatius 200 g", 179),
            E("Dominosteine 250 g", 229),
            E("Marzipanbrot 100 g", 199),
            E("Nougatriegel 100 g", 179),
            E("Pralinen-Mischung 200 g", 699),
            E("Trüffelpralinen 125 g", 599),
            E("Kartoffelchips Paprika 175 g", 199),
            E("Kartoffelchips gesalzen 175 g", 189),
            E("Salzstangen 250 g", 99),
            E("Erdnüsse geröstet 200 g", 179),
            E("Studentenfutter 200 g", 229),
            E("Popcorn süß 100 g", 149),
            E("Tortilla-Chips 200 g", 179),
            E("Reiswaffeln 100 g", 119),
            E("Müsliriegel 6 Stück", 199),
            E("Schokoküsse 9 Stück", 179),
            E("Macarons 6 Stück", 699),
            E("Nougat de Montélimar 100 g", 399),
            E("Crêpes dentelle 90 g", 279),
        ),
    ),
    Category(
        "deli",
        "Feinkost",
        "FK",
        RED,
        (
            kg("Gouda mittelalt", 1499),
            kg("Emmentaler", 1999),
            kg("Allgäuer Bergkäse", 2699),
            kg("Comté AOP", 3299),
            kg("Brie de Meaux", 2499),
            kg("Butterkäse", 1299),
            kg("Gekochter Schinken", 1999),
            kg("Salami", 2299),
            kg("Schwarzwälder Schinken", 2999),
            kg("Leberkäse", 1499),
            kg("Fleischwurst", 1299),
            E("Olivenöl extra vergine 0,5 l", 799),
            E("Rapsöl 1 l", 249),
            E("Aceto Balsamico 0,5 l", 399),
            E("Senf mittelscharf 200 ml", 89),
            E("Dijon-Senf 200 g", 249),
            E("Pesto Genovese 190 g", 299),
            E("Kapern 100 g", 199),
            E("Oliven grün 200 g", 229),
            E("Kalamata-Oliven 200 g", 299),
            E("Antipasti-Gemüse 280 g", 399),
            E("Ölsardinen 120 g", 199),
            E("Thunfisch in Öl 185 g", 249),
            E("Räucherlachs 100 g", 399),
            E("Matjesfilets 200 g", 299),
            E("Pâté de Campagne 180 g", 449),
            E("Rillettes du Mans 180 g", 549),
            E("Gänseschmalz 250 g", 299),
            E("Trüffelsalami 100 g", 499),
            E("Serrano-Schinken 100 g", 349),
            E("Bûche de chèvre 180 g", 399),
            E("Blütenhonig 500 g", 599),
            E("Erdbeerkonfitüre 340 g", 279),
            E("Nuss-Nougat-Creme 400 g", 299),
            E("Spaghetti 500 g", 149),
            E("Penne rigate 500 g", 149),
            E("Basmatireis 1 kg", 299),
            E("Risottoreis 1 kg", 349),
            E("Berglinsen 500 g", 199),
            E("Kichererbsen 400 g", 129),
            E("Gewürzgurken 670 g", 179),
            E("Sauerkraut 520 g", 129),
            E("Tomaten passiert 500 g", 99),
            E("Fleur de sel 125 g", 499),
            E("Pfeffer schwarz 50 g", 249),
            E("Herbes de Provence 15 g", 199),
            E("Weißwürste 4 Stück", 399),
            E("Wiener Würstchen 6 Stück", 299),
        ),
    ),
    Category(
        "household",
        "Haushalt",
        "HH",
        STD,
        (
            E("Spülmittel 500 ml", 119),
            E("Geschirrspültabs 30 Stück", 499),
            E("Allzweckreiniger 1 l", 149),
            E("Glasreiniger 500 ml", 179),
            E("WC-Reiniger 750 ml", 139),
            E("Flüssigwaschmittel 1,5 l", 599),
            E("Weichspüler 1 l", 199),
            E("Küchenrolle 4 Rollen", 299),
            E("Toilettenpapier 8 Rollen", 349),
            E("Taschentücher 10 Päckchen", 129),
            E("Müllbeutel 35 l 20 Stück", 149),
            E("Gefrierbeutel 3 l 20 Stück", 129),
            E("Alufolie 30 m", 199),
            E("Frischhaltefolie 30 m", 149),
            E("Backpapier 10 m", 129),
            E("Spülschwämme 5 Stück", 129),
            E("Haushaltskerzen weiß 4 Stück", 249),
            E("Teelichter 50 Stück", 299),
            E("Streichhölzer 10 Schachteln", 99),
            E("Stabfeuerzeug", 129),
            E("Batterien AA 4 Stück", 399),
            E("Batterien AAA 4 Stück", 399),
            E("LED-Lampe E27 warmweiß", 499),
            E("Grillanzünder 32 Würfel", 299),
            E("Servietten 50 Stück", 149),
            E("Pappteller 10 Stück", 199),
            E("Einkaufstasche Baumwolle", 199),
            E("Kaffeefilter Größe 4 100 Stück", 129),
        ),
    ),
    Category(
        "drugstore",
        "Drogerie",
        "DR",
        STD,
        (
            E("Zahnpasta 75 ml", 149),
            E("Zahnbürste mittel", 199),
            E("Zahnseide 50 m", 179),
            E("Mundspülung 500 ml", 249),
            E("Duschgel 250 ml", 129),
            E("Shampoo 300 ml", 199),
            E("Spülung 200 ml", 199),
            E("Stückseife 100 g", 99),
            E("Flüssigseife 500 ml", 149),
            E("Handcreme 75 ml", 199),
            E("Bodylotion 400 ml", 349),
            E("Deo-Roller 50 ml", 199),
            E("Deospray 150 ml", 229),
            E("Einwegrasierer 5 Stück", 349),
            E("Rasierschaum 250 ml", 199),
            E("Sonnencreme LSF 30 200 ml", 799),
            E("Lippenpflegestift", 149),
            E("Wattepads 80 Stück", 99),
            E("Wattestäbchen 200 Stück", 99),
            E("Pflaster-Mix 20 Stück", 249),
            E("Damenbinden 16 Stück", 149, tax=RED),
            E("Tampons normal 32 Stück", 229, tax=RED),
            E("Windeln Größe 4 44 Stück", 999),
            E("Feuchttücher 80 Stück", 129),
            E("Babybrei Karotte 190 g", 99, tax=RED),
            E("Nagelfeile", 129),
            E("Haargummis 12 Stück", 149),
            E("Taschenkamm", 149),
        ),
    ),
    Category(
        "press",
        "Zeitschriften & Bücher",
        "ZS",
        RED,
        (
            E("Tageszeitung regional", 290),
            E("Tageszeitung überregional", 350),
            E("Sonntagszeitung", 450),
            E("Wochenzeitung", 690),
            E("Nachrichtenmagazin", 650),
            E("Programmzeitschrift", 239),
            E("Frauenzeitschrift", 299),
            E("Rätselheft", 199),
            E("Kreuzworträtsel-Block", 249),
            E("Sudoku-Heft", 229),
            E("Kochzeitschrift", 490),
            E("Gartenzeitschrift", 450),
            E("Autozeitschrift", 470),
            E("Computerzeitschrift", 599),
            E("Modellbahn-Magazin", 890),
            E("Kinderzeitschrift", 499),
            E("Comicheft", 399),
            E("Französische Tageszeitung", 400),
            E("Stadtplan Hamburg", 899),
            E("Straßenatlas Deutschland", 1999),
            E("Taschenbuch Krimi", 1200),
            E("Taschenbuch Roman", 1100),
            E("Kochbuch Deutsche Küche", 2400),
            E("Kinderbuch Bilderbuch", 999),
            E("Malbuch", 599),
            E("Ansichtskarte", 99),
            E("Grußkarte Geburtstag", 299),
        ),
    ),
    Category(
        "post",
        "Post & Gutscheine",
        "PG",
        ZERO,
        (
            E("Briefmarke Standardbrief 0,95", 95),
            E("Briefmarke Postkarte 0,95", 95),
            E("Briefmarke Kompaktbrief 1,10", 110),
            E("Briefmarke Großbrief 1,80", 180),
            E("Briefmarke Maxibrief 2,90", 290),
            E("Markenheft 10 x 0,95", 950),
            E("Geschenkgutschein 10 EUR", 1000),
            E("Geschenkgutschein 20 EUR", 2000),
            E("Geschenkgutschein 25 EUR", 2500),
            E("Geschenkgutschein 50 EUR", 5000),
            E("Guthabenkarte Mobilfunk 15 EUR", 1500),
            E("Guthabenkarte Mobilfunk 30 EUR", 3000),
        ),
    ),
)


def gs1_check_digit(body: str) -> str:
    """GS1 mod-10 check digit for the digits ``body`` (weights 3,1,3,... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def with_check(body: str) -> str:
    return body + gs1_check_digit(body)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = int(c) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


class BarcodeFactory:
    """Deterministic source of made-up, unique, check-digit-correct barcodes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.plu = 0

    def _digits(self, n: int) -> str:
        return "".join(str(self.rng.randrange(10)) for _ in range(n))

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            code = make()
            # A 13-digit code that passes Luhn looks like a card number to PAN scanners
            # (ours and PCI tools); demo data must never trip them.
            if code not in self.used and not (len(code) >= 13 and luhn_valid(code)):
                self.used.add(code)
                return code

    def company_prefix(self) -> str:
        """A made-up 7-digit GS1 company prefix from the German range 400-440."""
        return f"{self.rng.randint(400, 440)}{self._digits(4)}"

    def ean13(self, company: str) -> str:
        return self._unique(lambda: with_check(company + self._digits(12 - len(company))))

    def ean8(self) -> str:
        return self._unique(lambda: with_check(f"{self.rng.randint(400, 440)}{self._digits(4)}"))

    def upca(self) -> str:
        # number system 0 (regular US/Canada goods): imported products
        return self._unique(lambda: with_check("0" + self._digits(10)))

    def instore(self, prefix: str) -> str:
        """In-store EAN-13: ``prefix`` (2 digits) + 5-digit PLU + 00000 (no embedded price)."""

        def next_code() -> str:
            self.plu += 1
            return with_check(f"{prefix}{self.plu:05d}00000")

        return self._unique(next_code)


def _barcodes_for(
    item: Item, category: Category, companies: list[str], bf: BarcodeFactory
) -> list[str]:
    rng = bf.rng
    if item.unit == "kg":
        return [bf.instore("21")]
    if category.tax == ZERO:
        return [bf.instore("29")]
    roll = rng.random()
    if roll < 0.08:
        codes = [bf.ean8()]
    elif roll < 0.14:
        codes = [bf.upca()]
    else:
        codes = [bf.ean13(rng.choice(companies))]
    if rng.random() < 0.12:  # a second (e.g. multipack or repackaged) EAN-13
        codes.append(bf.ean13(rng.choice(companies)))
    return codes


def build_catalog() -> dict[str, Any]:
    """Return the demo catalog as a JSON-ready dict (keys in their documented order)."""
    rng = random.Random(SEED)
    bf = BarcodeFactory(rng)
    categories: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for cat in CATEGORIES:
        categories.append({"id": cat.id, "name": cat.name})
        companies = [bf.company_prefix() for _ in range(4)]
        for n, item in enumerate(cat.items, start=1):
            tax = item.tax or cat.tax
            assert tax in TAX_CLASSES, (item, tax)
            assert isinstance(item.price, int) and item.price > 0, item
            item.name.encode(PRINTER_CODEPAGE)  # raises if a receipt printer could not print it
            items.append(
                {
                    "sku": f"{cat.prefix}-{n:04d}",
                    "name": item.name,
                    "category": cat.id,
                    "price": item.price,
                    "tax_class": tax,
                    "unit": item.unit,
                    "barcodes": _barcodes_for(item, cat, companies, bf),
                }
            )
    return {"version": VERSION, "currency": CURRENCY, "categories": categories, "items": items}


def render() -> str:
    """The catalog serialised exactly as it is stored on disk."""
    return json.dumps(build_catalog(), indent=2, ensure_ascii=False) + "\n"


def write(path: Path | str = DEFAULT_OUT) -> Path:
    """Write the catalog to ``path`` (UTF-8, LF line endings) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(render())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output path")
    args = parser.parse_args(argv)
    out = write(args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
