"""Seeded synthetic e-commerce data for the Atlas demo and benchmarks.

``generate(out_dir, rows=..., seed=...)`` writes four files plus a manifest:

* ``customers.csv``   - one row per customer (``max(10, rows // 3)`` customers)
* ``orders.csv``      - ``rows`` orders, each referencing an existing customer
* ``order_items.csv`` - 1-5 lines per order (about 2.5 on average)
* ``payments.jsonl``  - one JSON object per paid order (a few orders stay unpaid)
* ``manifest.json``   - exactly what was written, so loads can be verified

Output is fully deterministic: the same ``seed`` and ``rows`` give byte-identical
files (for a given Faker version). All dates are relative to the fixed
``REFERENCE_DATE`` (2026-01-01), never to "today".

Why the data is dirty
---------------------
Atlas exists to clean, validate and load messy source extracts, so a clean demo
data set would exercise nothing. The generator injects the kinds of problems real
exports have, at known seeded rates (the module-level ``*_RATE`` constants), and
counts every injection in the manifest so tests can assert the pipeline fixed
exactly what was broken:

* **Exact duplicates** - about 2% of customer rows, 1% of order rows and 1% of
  payment lines are repeated verbatim later in the file (re-sent batches,
  at-least-once delivery). Exercises de-duplication.
* **Malformed lines** - about 0.5% extra lines per CSV are truncated after 2-3
  fields, and about 0.5% extra payment lines are JSON cut in the middle (partial
  writes). They are *additional* lines, so the good data stays complete.
  Exercises quarantine / dead-letter handling. Even tiny runs get at least one
  duplicate and one malformed line in every file that is meant to have them.
* **Nulls** - about 3% of customers have an empty email, 3% an empty phone and
  1% of orders an empty status. Exercises null handling and validation rules.
* **Mixed date formats** - ``birth_date`` is ``YYYY-MM-DD`` (70%),
  ``DD/MM/YYYY`` (20%) or ``YYYY/MM/DD`` (10%); ``order_date`` is
  ``YYYY-MM-DD HH:MM:SS`` (80%) or ``DD/MM/YYYY HH:MM`` (20%). ``signup_at`` and
  ``paid_at`` are clean ISO ``YYYY-MM-DDTHH:MM:SS``. Exercises date parsing.
* **Whitespace and case** - about 5% of first names, last names and emails have
  leading/trailing spaces, 5% of emails are upper-cased and 5% of statuses are
  upper-cased or padded. Exercises normalisation.
* **PII in free text** - ``notes`` is often empty or harmless ("Leave at the back
  door") but sometimes contains a phone number, an email address or a person's
  name. Exercises PII detection and masking.

Further invariants of the good rows: customer ids and order ids are 1-based and
dense; every order's ``customer_id`` exists and the order was placed after that
customer's ``signup_at``; order ids increase with ``order_date``; every payment's
``amount`` equals the sum of ``quantity * unit_price`` of its order's items;
emails are unique per customer (case-insensitively); text is UTF-8 and includes
accented names (de_DE, fr_FR).

Speed: Faker is only used to build small, seeded pools (names, streets, cities,
postcodes, phone formats, sentences). Rows are then assembled from those pools
with a seeded ``random.Random`` and streamed to disk row by row, so memory stays
flat and ``rows=1_000_000`` takes seconds, not minutes.
"""

from __future__ import annotations

import csv
import json
import random
import re
import unicodedata
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from faker import Faker

__all__ = [
    "CUSTOMERS_COLUMNS",
    "DemoFiles",
    "ORDERS_COLUMNS",
    "ORDER_ITEMS_COLUMNS",
    "PAYMENT_KEYS",
    "REFERENCE_DATE",
    "generate",
]

# --------------------------------------------------------------------------
# Fixed reference points (never "today": output must be deterministic)
# --------------------------------------------------------------------------
REFERENCE_DATE = date(2026, 1, 1)
REFERENCE_DATETIME = datetime(2026, 1, 1)
ORDER_WINDOW_START = datetime(2024, 1, 1)  # orders fall in the 2 years before REFERENCE_DATE
SIGNUP_WINDOW_START = datetime(2016, 1, 1)  # customers sign up between this and REFERENCE_DATE
BIRTH_DATE_MIN = date(1940, 1, 1)
BIRTH_DATE_MAX = date(2007, 12, 31)
MIN_SIGNUP_AGE_DAYS = 18 * 365 + 4  # customers are adults when they sign up

# --------------------------------------------------------------------------
# Dirt rates (probabilities per good record unless stated otherwise)
# --------------------------------------------------------------------------
CUSTOMER_DUPLICATE_RATE = 0.02  # extra exact copies of earlier customer rows
ORDER_DUPLICATE_RATE = 0.01  # extra exact copies of earlier order rows
PAYMENT_DUPLICATE_RATE = 0.01  # extra exact copies of earlier payment lines
CSV_MALFORMED_RATE = 0.005  # extra truncated lines in every CSV
PAYMENT_MALFORMED_RATE = 0.005  # extra half-written JSON lines
EMAIL_NULL_RATE = 0.03
PHONE_NULL_RATE = 0.03
STATUS_NULL_RATE = 0.01
NAME_WHITESPACE_RATE = 0.05  # per first_name / last_name value
EMAIL_WHITESPACE_RATE = 0.05
EMAIL_UPPERCASE_RATE = 0.05
STATUS_MESSY_RATE = 0.05  # upper-cased or padded with spaces
BIRTH_DATE_FORMAT_RATES: dict[str, float] = {
    "YYYY-MM-DD": 0.70,
    "DD/MM/YYYY": 0.20,
    "YYYY/MM/DD": 0.10,
}
ORDER_DATE_FORMAT_RATES: dict[str, float] = {
    "YYYY-MM-DD HH:MM:SS": 0.80,
    "DD/MM/YYYY HH:MM": 0.20,
}
NOTE_RATES: dict[str, float] = {
    "empty": 0.58,
    "harmless": 0.27,
    "pii_phone": 0.05,
    "pii_email": 0.05,
    "pii_name": 0.05,
}
UNPAID_RATE_BY_STATUS: dict[str, float] = {"placed": 0.15, "cancelled": 0.30}
SHIPPING_ELSEWHERE_RATE = 0.10  # order shipped to another city than the customer's
FOREIGN_CURRENCY_RATE = 0.08  # order paid in a currency other than the customer's
DISCOUNT_RATE = 0.10  # order line sold below list price

DUPLICATE_WINDOW = 512  # duplicates repeat one of the last N good rows

# --------------------------------------------------------------------------
# File layout
# --------------------------------------------------------------------------
CUSTOMERS_FILE = "customers.csv"
ORDERS_FILE = "orders.csv"
ORDER_ITEMS_FILE = "order_items.csv"
PAYMENTS_FILE = "payments.jsonl"
MANIFEST_FILE = "manifest.json"

CUSTOMERS_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "street_address",
    "city",
    "postcode",
    "country",
    "birth_date",
    "signup_at",
    "notes",
)
ORDERS_COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "order_date",
    "status",
    "currency",
    "shipping_city",
)
ORDER_ITEMS_COLUMNS: tuple[str, ...] = (
    "order_id",
    "line_no",
    "sku",
    "product_name",
    "quantity",
    "unit_price",
)
PAYMENT_KEYS: tuple[str, ...] = (
    "payment_id",
    "order_id",
    "method",
    "amount",
    "paid_at",
    "card_last4",
)

STATUSES: tuple[str, ...] = ("placed", "shipped", "delivered", "cancelled", "returned")
CURRENCIES: tuple[str, ...] = ("EUR", "GBP", "USD")
PAYMENT_METHODS: tuple[str, ...] = ("card", "paypal", "bank_transfer")

# (locale, ISO-2 country, home currency, share of customers in %)
LOCALES: tuple[tuple[str, str, str, int], ...] = (
    ("en_US", "US", "USD", 40),
    ("en_GB", "GB", "GBP", 25),
    ("de_DE", "DE", "EUR", 20),
    ("fr_FR", "FR", "EUR", 15),
)
EMAIL_DOMAINS: tuple[str, ...] = (
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "inbox.example.org",
)
EMAIL_PATTERNS: tuple[str, ...] = (
    "{f}.{l}{n}@{d}",
    "{f}.{l}{n}@{d}",
    "{f}_{l}{n}@{d}",
    "{i}{l}{n}@{d}",
    "{l}.{f}{n}@{d}",
)
HARMLESS_NOTES: tuple[str, ...] = (
    "Leave at the back door",
    "Ring the bell twice",
    "Fragile, handle with care",
    "No plastic packaging please",
    "Deliver after 5pm",
    "Parcel can go to the neighbour",
    'Customer said "no weekend deliveries"',
    "Gate code is on the intercom",
    "Repeat customer, very happy with service",
    "Prefers paperless invoices",
)
PII_PHONE_NOTES: tuple[str, ...] = (
    "Call me on {}",
    "Please call {} before delivery",
    "Driver: ring {} if nobody answers",
)
PII_EMAIL_NOTES: tuple[str, ...] = (
    "prefers email {}",
    "Send the invoice to {}",
    "Contact via {} only",
)
PII_NAME_NOTES: tuple[str, ...] = (
    "Gift for {}",
    "Deliver to neighbour {} if not home",
    "Account managed by {}",
)

# Product catalogue: category -> (nouns, min price, max price) in whole currency units.
CATALOGUE: dict[str, tuple[tuple[str, ...], int, int]] = {
    "APP": (("T-Shirt", "Hoodie", "Socks", "Jeans", "Cap", "Scarf", "Rain Jacket"), 8, 120),
    "HOM": (
        ("Mug", "Candle", "Cushion", "Throw Blanket", "Vase", "Table Lamp", 'Art Print 12" x 16"'),
        6,
        90,
    ),
    "KIT": (
        ("Chef Knife", "Cutting Board", "Teapot", "Frying Pan", "Spice Set", "Water Bottle"),
        9,
        150,
    ),
    "ELE": (
        ("USB-C Cable", "Wireless Mouse", "Headphones", "Phone Case", "Power Bank", "Smart Plug"),
        7,
        250,
    ),
    "OUT": (
        ("Backpack", "Tent", "Sleeping Bag", "Camping Stove", "Trekking Poles", "Head Torch"),
        15,
        400,
    ),
}
PRODUCT_ADJECTIVES: tuple[str, ...] = (
    "Classic",
    "Organic",
    "Recycled",
    "Vintage",
    "Premium",
    "Everyday",
    "Compact",
    "Deluxe",
    "Nordic",
    "Urban",
)
PRODUCT_COLOURS: tuple[str, ...] = (
    "Black",
    "White",
    "Navy",
    "Sage",
    "Terracotta",
    "Grey",
    "Mustard",
    "Oat",
)
CATALOGUE_SIZE = 600

# Weighted lookup tables (index with int(random() * len(table))).
LINES_PER_ORDER_TABLE: tuple[int, ...] = (
    (1,) * 5 + (2,) * 6 + (3,) * 4 + (4,) * 3 + (5,) * 2
)  # mean 2.55
QUANTITY_TABLE: tuple[int, ...] = (1,) * 12 + (2,) * 5 + (3,) * 2 + (4,) * 1
STATUS_TABLE: tuple[str, ...] = (
    ("delivered",) * 62
    + ("shipped",) * 12
    + ("placed",) * 8
    + ("cancelled",) * 10
    + ("returned",) * 8
)
PAYMENT_METHOD_TABLE: tuple[str, ...] = ("card",) * 12 + ("paypal",) * 5 + ("bank_transfer",) * 3
RECENT_ORDER_SECONDS = 7 * 86400  # orders younger than this are only placed / shipped

_EPOCH = datetime(2000, 1, 1)  # internal time base: seconds since this instant
_PADDINGS: tuple[str, ...] = (" {}", "{} ", " {} ", "  {}", "{}  ")
_NON_ALPHA = re.compile(r"[^a-z]")


@dataclass
class DemoFiles:
    """Paths of the generated files and the manifest describing them."""

    customers: Path  # CSV
    orders: Path  # CSV
    order_items: Path  # CSV
    payments: Path  # JSON Lines
    manifest: dict[str, Any]


# --------------------------------------------------------------------------
# Pools (the only place Faker is used)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class _LocalePool:
    locale: str
    country: str
    currency: str
    first_names: tuple[str, ...]
    first_slugs: tuple[str, ...]
    last_names: tuple[str, ...]
    last_slugs: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[str, ...]
    postcodes: tuple[str, ...]
    phone_templates: tuple[str, ...]  # str.format templates with six "{}" digit slots
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class _Product:
    sku: str
    name: str
    price_cents: int
    price_text: str  # price_cents as "12.34"
    discount_cents: int  # 10% off, used for discounted order lines
    discount_text: str


@dataclass(frozen=True)
class _Pools:
    locales: tuple[_LocalePool, ...]
    locale_table: tuple[int, ...]  # index into locales, weighted by customer share
    products: tuple[_Product, ...]


def _clean(text: str) -> str:
    """Single-line, trimmed text (Faker addresses can contain newlines)."""
    return " ".join(text.replace("\n", ", ").split())


def _slug(text: str) -> str:
    """ASCII lowercase letters only, for email local parts ("Müller" -> "muller")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NON_ALPHA.sub("", ascii_text.lower()) or "user"


def _unique(fn: Callable[[], str], count: int) -> tuple[str, ...]:
    """Call ``fn`` ``count`` times; keep distinct cleaned values in first-seen order."""
    return tuple(dict.fromkeys(v for v in (_clean(fn()) for _ in range(count)) if v))


def _phone_template(phone: str) -> str:
    """Keep the country/area prefix of a Faker phone number, template its last 6 digits."""
    phone = phone.replace("{", "").replace("}", "")
    digit_positions = [i for i, ch in enumerate(phone) if ch.isdigit()]
    chars = list(phone)
    for pos in digit_positions[-6:]:
        chars[pos] = "{}"
    return "".join(chars)


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@lru_cache(maxsize=4)
def _build_pools(seed: int) -> _Pools:
    locale_pools = []
    locale_table: list[int] = []
    for index, (locale, country, currency, share) in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 1009 + index)
        first_names = _unique(fake.first_name, 700)
        last_names = _unique(fake.last_name, 700)
        phones = _unique(fake.phone_number, 200)
        templates = tuple(
            dict.fromkeys(t for t in map(_phone_template, phones) if t.count("{}") == 6)
        )
        locale_pools.append(
            _LocalePool(
                locale=locale,
                country=country,
                currency=currency,
                first_names=first_names,
                first_slugs=tuple(_slug(n) for n in first_names),
                last_names=last_names,
                last_slugs=tuple(_slug(n) for n in last_names),
                streets=_unique(fake.street_address, 1000),
                cities=_unique(fake.city, 400),
                postcodes=_unique(fake.postcode, 1000),
                phone_templates=templates,
                sentences=_unique(fake.sentence, 150),
            )
        )
        locale_table.extend([index] * share)

    rng = random.Random(f"atlas-demo:{seed}:catalogue")
    categories = list(CATALOGUE)
    products = []
    for number in range(1, CATALOGUE_SIZE + 1):
        category = categories[number % len(categories)]
        nouns, low, high = CATALOGUE[category]
        noun = rng.choice(nouns)
        adjective = rng.choice(PRODUCT_ADJECTIVES)
        colour = rng.choice(PRODUCT_COLOURS)
        # Some names contain a comma (and one noun a double quote) so CSV quoting is exercised.
        name = (
            f"{adjective} {noun}, {colour}"
            if rng.random() < 0.3
            else f"{adjective} {noun} - {colour}"
        )
        price_cents = rng.randint(low * 100, high * 100) // 10 * 10 + rng.choice((0, 0, 9, 5))
        discount_cents = price_cents * 9 // 10
        products.append(
            _Product(
                sku=f"{category}-{number:05d}",
                name=name,
                price_cents=price_cents,
                price_text=_money(price_cents),
                discount_cents=discount_cents,
                discount_text=_money(discount_cents),
            )
        )
    return _Pools(
        locales=tuple(locale_pools), locale_table=tuple(locale_table), products=tuple(products)
    )


# --------------------------------------------------------------------------
# Small helpers used in the hot loops
# --------------------------------------------------------------------------
def _new_stats() -> dict[str, int]:
    return {"lines_total": 0, "good_rows": 0, "duplicate_rows": 0, "malformed_rows": 0}


class _DirtyCsv:
    """CSV writer that adds seeded exact duplicates and truncated lines."""

    def __init__(
        self,
        handle: IO[str],
        header: Sequence[str],
        rng: random.Random,
        duplicate_rate: float,
        malformed_rate: float,
    ) -> None:
        self._writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        self._writer.writerow(header)
        self._rng = rng
        self._duplicate_rate = duplicate_rate
        self._malformed_rate = malformed_rate
        self._recent: list[Sequence[Any]] = []
        self._slot = 0
        self.stats = _new_stats()

    def write(self, row: Sequence[Any]) -> None:
        writerow = self._writer.writerow
        rnd = self._rng.random
        writerow(row)
        stats = self.stats
        stats["good_rows"] += 1
        recent = self._recent
        if len(recent) < DUPLICATE_WINDOW:
            recent.append(row)
        else:
            recent[self._slot] = row
            self._slot = (self._slot + 1) % DUPLICATE_WINDOW
        if rnd() < self._duplicate_rate:
            writerow(recent[int(rnd() * len(recent))])
            stats["duplicate_rows"] += 1
        if rnd() < self._malformed_rate:
            # A partial write: the line stops after 2 or 3 of the fields.
            writerow(row[: 2 + int(rnd() * 2)])
            stats["malformed_rows"] += 1

    def finish(self) -> dict[str, int]:
        """Complete the stats; call before the file is closed.

        Small files may not have drawn any dirt at these low rates, so if none was
        produced, one duplicate and/or one truncated line is appended at the end:
        every file always shows each kind of structural dirt it is meant to have.
        """
        stats = self.stats
        recent = self._recent
        if recent and self._duplicate_rate > 0 and stats["duplicate_rows"] == 0:
            self._writer.writerow(recent[int(self._rng.random() * len(recent))])
            stats["duplicate_rows"] += 1
        if recent and self._malformed_rate > 0 and stats["malformed_rows"] == 0:
            self._writer.writerow(recent[int(self._rng.random() * len(recent))][:2])
            stats["malformed_rows"] += 1
        stats["lines_total"] = (
            stats["good_rows"] + stats["duplicate_rows"] + stats["malformed_rows"]
        )
        return stats


# --------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------
def _write_customers(
    path: Path,
    pools: _Pools,
    n_customers: int,
    seed: int,
) -> tuple[dict[str, int], dict[str, Any], array, bytearray, array]:
    """Stream customers.csv.

    Returns the file stats, the dirt counts and three compact per-customer arrays
    (signup second, locale index, city index) needed to generate consistent orders.
    """
    rng = random.Random(f"atlas-demo:{seed}:customers")
    r = rng.random
    locales = pools.locales
    locale_table = pools.locale_table
    n_locale_table = len(locale_table)

    signup_start = int((SIGNUP_WINDOW_START - _EPOCH).total_seconds())
    signup_span = int((REFERENCE_DATETIME - SIGNUP_WINDOW_START).total_seconds())
    gap2 = 2.0 * signup_span / (n_customers + 1)  # uniform gaps => sorted signups
    birth_min = BIRTH_DATE_MIN.toordinal()
    birth_max = BIRTH_DATE_MAX.toordinal()
    epoch = _EPOCH
    epoch_ordinal = _EPOCH.toordinal()
    from_ordinal = date.fromordinal
    td = timedelta

    note_cut_empty = NOTE_RATES["empty"]
    note_cut_harmless = note_cut_empty + NOTE_RATES["harmless"]
    note_cut_phone = note_cut_harmless + NOTE_RATES["pii_phone"]
    note_cut_email = note_cut_phone + NOTE_RATES["pii_email"]
    birth_cut_iso = BIRTH_DATE_FORMAT_RATES["YYYY-MM-DD"]
    birth_cut_dmy = birth_cut_iso + BIRTH_DATE_FORMAT_RATES["DD/MM/YYYY"]

    signups = array("q")
    customer_locale = bytearray()
    customer_city = array("I")

    dirt: dict[str, Any] = {
        "empty_email": 0,
        "empty_phone": 0,
        "padded_first_name": 0,
        "padded_last_name": 0,
        "padded_email": 0,
        "uppercase_email": 0,
        "birth_date_formats": dict.fromkeys(BIRTH_DATE_FORMAT_RATES, 0),
        "notes": dict.fromkeys(NOTE_RATES, 0),
    }
    birth_formats = dirt["birth_date_formats"]
    note_counts = dirt["notes"]
    paddings = _PADDINGS
    n_paddings = len(paddings)

    with path.open("w", encoding="utf-8", newline="", buffering=1 << 20) as handle:
        out = _DirtyCsv(handle, CUSTOMERS_COLUMNS, rng, CUSTOMER_DUPLICATE_RATE, CSV_MALFORMED_RATE)
        write = out.write
        t = 0.0
        for customer_id in range(1, n_customers + 1):
            li = locale_table[int(r() * n_locale_table)]
            loc = locales[li]
            fi = int(r() * len(loc.first_names))
            la = int(r() * len(loc.last_names))
            first = loc.first_names[fi]
            last = loc.last_names[la]
            f_slug = loc.first_slugs[fi]
            email = EMAIL_PATTERNS[int(r() * len(EMAIL_PATTERNS))].format(
                f=f_slug,
                l=loc.last_slugs[la],
                i=f_slug[0],
                n=customer_id,
                d=EMAIL_DOMAINS[int(r() * len(EMAIL_DOMAINS))],
            )
            templates = loc.phone_templates
            phone = templates[int(r() * len(templates))].format(*f"{int(r() * 1_000_000):06d}")
            city_index = int(r() * len(loc.cities))

            # Signup: sorted by customer_id, so "customers signed up before t" is an id prefix.
            t += r() * gap2
            signup_s = signup_start + min(int(t), signup_span - 1)
            signup_dt = epoch + td(seconds=signup_s)
            latest_birth = min(birth_max, epoch_ordinal + signup_s // 86400 - MIN_SIGNUP_AGE_DAYS)
            birth = from_ordinal(birth_min + int(r() * (latest_birth - birth_min + 1)))
            x = r()
            if x < birth_cut_iso:
                birth_text = birth.isoformat()
                birth_formats["YYYY-MM-DD"] += 1
            elif x < birth_cut_dmy:
                birth_text = f"{birth.day:02d}/{birth.month:02d}/{birth.year}"
                birth_formats["DD/MM/YYYY"] += 1
            else:
                birth_text = f"{birth.year}/{birth.month:02d}/{birth.day:02d}"
                birth_formats["YYYY/MM/DD"] += 1

            x = r()
            if x < note_cut_empty:
                note = ""
                note_counts["empty"] += 1
            elif x < note_cut_harmless:
                if r() < 0.5:
                    note = HARMLESS_NOTES[int(r() * len(HARMLESS_NOTES))]
                else:
                    note = loc.sentences[int(r() * len(loc.sentences))]
                note_counts["harmless"] += 1
            elif x < note_cut_phone:
                note = PII_PHONE_NOTES[int(r() * len(PII_PHONE_NOTES))].format(phone)
                note_counts["pii_phone"] += 1
            elif x < note_cut_email:
                note = PII_EMAIL_NOTES[int(r() * len(PII_EMAIL_NOTES))].format(email)
                note_counts["pii_email"] += 1
            else:
                other = locales[locale_table[int(r() * n_locale_table)]]
                person = (
                    f"{other.first_names[int(r() * len(other.first_names))]} "
                    f"{other.last_names[int(r() * len(other.last_names))]}"
                )
                note = PII_NAME_NOTES[int(r() * len(PII_NAME_NOTES))].format(person)
                note_counts["pii_name"] += 1

            # Dirt on the values themselves.
            if r() < NAME_WHITESPACE_RATE:
                first = paddings[int(r() * n_paddings)].format(first)
                dirt["padded_first_name"] += 1
            if r() < NAME_WHITESPACE_RATE:
                last = paddings[int(r() * n_paddings)].format(last)
                dirt["padded_last_name"] += 1
            if r() < EMAIL_NULL_RATE:
                email = ""
                dirt["empty_email"] += 1
            else:
                if r() < EMAIL_UPPERCASE_RATE:
                    email = email.upper()
                    dirt["uppercase_email"] += 1
                if r() < EMAIL_WHITESPACE_RATE:
                    email = paddings[int(r() * n_paddings)].format(email)
                    dirt["padded_email"] += 1
            if r() < PHONE_NULL_RATE:
                phone = ""
                dirt["empty_phone"] += 1

            write(
                (
                    customer_id,
                    first,
                    last,
                    email,
                    phone,
                    loc.streets[int(r() * len(loc.streets))],
                    loc.cities[city_index],
                    loc.postcodes[int(r() * len(loc.postcodes))],
                    loc.country,
                    birth_text,
                    signup_dt.isoformat(),
                    note,
                )
            )
            signups.append(signup_s)
            customer_locale.append(li)
            customer_city.append(city_index)
        stats = out.finish()
    return stats, dirt, signups, customer_locale, customer_city


def _write_orders(
    out_dir: Path,
    pools: _Pools,
    rows: int,
    seed: int,
    signups: array,
    customer_locale: bytearray,
    customer_city: array,
) -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
    """Stream orders.csv, order_items.csv and payments.jsonl together."""
    rng = random.Random(f"atlas-demo:{seed}:orders")
    r = rng.random
    locales = pools.locales
    products = pools.products
    n_products = len(products)
    n_customers = len(signups)

    epoch = _EPOCH
    td = timedelta
    order_start = int((ORDER_WINDOW_START - _EPOCH).total_seconds())
    order_span = int((REFERENCE_DATETIME - ORDER_WINDOW_START).total_seconds())
    reference_s = int((REFERENCE_DATETIME - _EPOCH).total_seconds())
    gap2 = 2.0 * order_span / (rows + 1)  # uniform gaps => order ids increase with time
    iso_cut = ORDER_DATE_FORMAT_RATES["YYYY-MM-DD HH:MM:SS"]
    n_lines_table = len(LINES_PER_ORDER_TABLE)
    n_quantity_table = len(QUANTITY_TABLE)
    n_status_table = len(STATUS_TABLE)
    n_method_table = len(PAYMENT_METHOD_TABLE)
    unpaid_placed = UNPAID_RATE_BY_STATUS["placed"]
    unpaid_cancelled = UNPAID_RATE_BY_STATUS["cancelled"]
    dumps = json.dumps
    paddings = _PADDINGS
    n_paddings = len(paddings)

    dirt: dict[str, Any] = {
        "empty_status": 0,
        "messy_status": 0,
        "order_date_formats": dict.fromkeys(ORDER_DATE_FORMAT_RATES, 0),
        "unpaid_orders": 0,
    }
    date_formats = dirt["order_date_formats"]
    payment_stats = _new_stats()
    recent_payments: list[str] = []
    recent_slot = 0

    with (
        (out_dir / ORDERS_FILE).open(
            "w", encoding="utf-8", newline="", buffering=1 << 20
        ) as orders_handle,
        (out_dir / ORDER_ITEMS_FILE).open(
            "w", encoding="utf-8", newline="", buffering=1 << 20
        ) as items_handle,
        (out_dir / PAYMENTS_FILE).open(
            "w", encoding="utf-8", newline="", buffering=1 << 20
        ) as payments_handle,
    ):
        orders_out = _DirtyCsv(
            orders_handle, ORDERS_COLUMNS, rng, ORDER_DUPLICATE_RATE, CSV_MALFORMED_RATE
        )
        # order_items has no duplicates, only truncated lines: written inline, it is the biggest file.
        items_writer = csv.writer(items_handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        items_writer.writerow(ORDER_ITEMS_COLUMNS)
        write_items = items_writer.writerows
        item_stats = _new_stats()
        item_rows = 0
        item_malformed = 0
        write_order = orders_out.write
        write_payment = payments_handle.write
        eligible = 0  # customers 1..eligible signed up before the current order
        payment_id = 0
        t = 0.0
        for order_id in range(1, rows + 1):
            t += r() * gap2
            order_s = order_start + min(int(t), order_span - 1)
            while eligible < n_customers and signups[eligible] <= order_s:
                eligible += 1
            customer_index = int(r() * max(eligible, 1))
            loc = locales[customer_locale[customer_index]]
            order_dt = epoch + td(seconds=order_s)

            if reference_s - order_s < RECENT_ORDER_SECONDS:
                status = "placed" if r() < 0.5 else "shipped"
            else:
                status = STATUS_TABLE[int(r() * n_status_table)]
            currency = loc.currency if r() >= FOREIGN_CURRENCY_RATE else CURRENCIES[int(r() * 3)]
            if r() < SHIPPING_ELSEWHERE_RATE:
                shipping_city = loc.cities[int(r() * len(loc.cities))]
            else:
                shipping_city = loc.cities[customer_city[customer_index]]

            if r() < iso_cut:
                date_text = order_dt.isoformat(" ")
                date_formats["YYYY-MM-DD HH:MM:SS"] += 1
            else:
                date_text = (
                    f"{order_dt.day:02d}/{order_dt.month:02d}/{order_dt.year} "
                    f"{order_dt.hour:02d}:{order_dt.minute:02d}"
                )
                date_formats["DD/MM/YYYY HH:MM"] += 1
            if r() < STATUS_NULL_RATE:
                status_text = ""
                dirt["empty_status"] += 1
            elif r() < STATUS_MESSY_RATE:
                status_text = (
                    status.upper() if r() < 0.5 else paddings[int(r() * n_paddings)].format(status)
                )
                dirt["messy_status"] += 1
            else:
                status_text = status
            write_order(
                (order_id, customer_index + 1, date_text, status_text, currency, shipping_city)
            )

            total_cents = 0
            lines = []
            for line_no in range(1, LINES_PER_ORDER_TABLE[int(r() * n_lines_table)] + 1):
                product = products[int(n_products * r() * r())]  # skewed: some best sellers
                quantity = QUANTITY_TABLE[int(r() * n_quantity_table)]
                if r() < DISCOUNT_RATE:
                    total_cents += product.discount_cents * quantity
                    price_text = product.discount_text
                else:
                    total_cents += product.price_cents * quantity
                    price_text = product.price_text
                line_row = (order_id, line_no, product.sku, product.name, quantity, price_text)
                lines.append(line_row)
                if r() < CSV_MALFORMED_RATE:
                    lines.append(line_row[: 2 + int(r() * 2)])
                    item_malformed += 1
            item_rows += line_no
            write_items(lines)

            # Payment (a few orders stay unpaid).
            if (status == "placed" and r() < unpaid_placed) or (
                status == "cancelled" and r() < unpaid_cancelled
            ):
                dirt["unpaid_orders"] += 1
                continue
            method = PAYMENT_METHOD_TABLE[int(r() * n_method_table)]
            if method == "bank_transfer":
                paid_s = order_s + 3600 + int(r() * 71 * 3600)
            else:
                paid_s = order_s + 5 + int(r() * 1800)
            if paid_s >= reference_s:  # money not yet received at the reference date
                dirt["unpaid_orders"] += 1
                continue
            payment_id += 1
            line = dumps(
                {
                    "payment_id": payment_id,
                    "order_id": order_id,
                    "method": method,
                    "amount": total_cents / 100,
                    "paid_at": (epoch + td(seconds=paid_s)).isoformat(),
                    "card_last4": f"{int(r() * 10000):04d}" if method == "card" else None,
                }
            )
            write_payment(line + "\n")
            payment_stats["good_rows"] += 1
            if len(recent_payments) < DUPLICATE_WINDOW:
                recent_payments.append(line)
            else:
                recent_payments[recent_slot] = line
                recent_slot = (recent_slot + 1) % DUPLICATE_WINDOW
            if r() < PAYMENT_DUPLICATE_RATE:
                write_payment(recent_payments[int(r() * len(recent_payments))] + "\n")
                payment_stats["duplicate_rows"] += 1
            if r() < PAYMENT_MALFORMED_RATE:
                # Half-written line: a proper prefix of a JSON object never parses.
                write_payment(line[: 10 + int(r() * (len(line) - 20))] + "\n")
                payment_stats["malformed_rows"] += 1

        # Tiny runs: make sure each kind of structural dirt still appears once.
        order_stats = orders_out.finish()
        if item_malformed == 0:
            write_items([(rows, 1)])
            item_malformed += 1
        if recent_payments and payment_stats["duplicate_rows"] == 0:
            write_payment(recent_payments[int(r() * len(recent_payments))] + "\n")
            payment_stats["duplicate_rows"] += 1
        if recent_payments and payment_stats["malformed_rows"] == 0:
            line = recent_payments[-1]
            write_payment(line[: len(line) // 2] + "\n")
            payment_stats["malformed_rows"] += 1

    item_stats["good_rows"] = item_rows
    item_stats["malformed_rows"] = item_malformed
    item_stats["lines_total"] = item_rows + item_malformed
    payment_stats["lines_total"] = (
        payment_stats["good_rows"]
        + payment_stats["duplicate_rows"]
        + payment_stats["malformed_rows"]
    )
    stats = {
        "orders": order_stats,
        "order_items": item_stats,
        "payments": payment_stats,
    }
    return stats, dirt


def generate(out_dir: Path, *, rows: int = 2000, seed: int = 42) -> DemoFiles:
    """Write the demo data set into ``out_dir`` (created if missing).

    ``rows`` is the number of distinct orders before dirt is added. The same
    ``rows`` and ``seed`` always produce byte-identical files.
    """
    if rows < 1:
        raise ValueError("rows must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pools = _build_pools(seed)
    n_customers = max(10, rows // 3)

    customer_stats, customer_dirt, signups, customer_locale, customer_city = _write_customers(
        out_dir / CUSTOMERS_FILE, pools, n_customers, seed
    )
    order_stats, order_dirt = _write_orders(
        out_dir, pools, rows, seed, signups, customer_locale, customer_city
    )

    files: dict[str, dict[str, Any]] = {
        "customers": {
            "file": CUSTOMERS_FILE,
            "format": "csv",
            "columns": list(CUSTOMERS_COLUMNS),
            **customer_stats,
        },
        "orders": {
            "file": ORDERS_FILE,
            "format": "csv",
            "columns": list(ORDERS_COLUMNS),
            **order_stats["orders"],
        },
        "order_items": {
            "file": ORDER_ITEMS_FILE,
            "format": "csv",
            "columns": list(ORDER_ITEMS_COLUMNS),
            **order_stats["order_items"],
        },
        "payments": {
            "file": PAYMENTS_FILE,
            "format": "jsonl",
            "keys": list(PAYMENT_KEYS),
            **order_stats["payments"],
        },
    }
    manifest: dict[str, Any] = {
        "generator": "atlas-demo",
        "version": 1,
        "seed": seed,
        "rows": rows,
        "customers": n_customers,
        "reference_date": REFERENCE_DATE.isoformat(),
        "files": files,
        "dirt": {"customers": customer_dirt, "orders": order_dirt},
        "rates": {
            "customer_duplicate": CUSTOMER_DUPLICATE_RATE,
            "order_duplicate": ORDER_DUPLICATE_RATE,
            "payment_duplicate": PAYMENT_DUPLICATE_RATE,
            "csv_malformed": CSV_MALFORMED_RATE,
            "payment_malformed": PAYMENT_MALFORMED_RATE,
            "email_null": EMAIL_NULL_RATE,
            "phone_null": PHONE_NULL_RATE,
            "status_null": STATUS_NULL_RATE,
            "name_whitespace": NAME_WHITESPACE_RATE,
            "email_whitespace": EMAIL_WHITESPACE_RATE,
            "email_uppercase": EMAIL_UPPERCASE_RATE,
            "status_messy": STATUS_MESSY_RATE,
            "birth_date_formats": BIRTH_DATE_FORMAT_RATES,
            "order_date_formats": ORDER_DATE_FORMAT_RATES,
            "notes": NOTE_RATES,
        },
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return DemoFiles(
        customers=out_dir / CUSTOMERS_FILE,
        orders=out_dir / ORDERS_FILE,
        order_items=out_dir / ORDER_ITEMS_FILE,
        payments=out_dir / PAYMENTS_FILE,
        manifest=manifest,
    )
