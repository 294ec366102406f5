"""Tests for the seeded synthetic e-commerce generator (demo.generator).

No database needed: the generator only writes files.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from demo.generator import (
    CUSTOMERS_COLUMNS,
    ORDER_ITEMS_COLUMNS,
    ORDERS_COLUMNS,
    PAYMENT_KEYS,
    DemoFiles,
    generate,
)

ROWS = 300
SEED = 7
FILE_NAMES = ("customers.csv", "orders.csv", "order_items.csv", "payments.jsonl", "manifest.json")

BIRTH_FORMATS = {
    "YYYY-MM-DD": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "DD/MM/YYYY": re.compile(r"^\d{2}/\d{2}/\d{4}$"),
    "YYYY/MM/DD": re.compile(r"^\d{4}/\d{2}/\d{2}$"),
}
ORDER_DATE_FORMATS = {
    "YYYY-MM-DD HH:MM:SS": "%Y-%m-%d %H:%M:%S",
    "DD/MM/YYYY HH:MM": "%d/%m/%Y %H:%M",
}
ISO_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


# --------------------------------------------------------------------------
# Helpers: load the files the way a naive consumer would
# --------------------------------------------------------------------------
def read_csv(path: Path, columns: tuple[str, ...]) -> dict[str, Any]:
    """Split a CSV into good (full-width) rows and malformed (short) rows."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        full, short = [], []
        for row in reader:
            if len(row) == len(columns):
                full.append(tuple(row))
            else:
                assert len(row) < len(columns), row
                short.append(row)
    distinct = list(dict.fromkeys(full))
    return {"header": header, "full": full, "short": short, "distinct": distinct}


def read_jsonl(path: Path) -> dict[str, Any]:
    good_lines: list[str] = []
    broken: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            try:
                json.loads(line)
            except json.JSONDecodeError:
                broken.append(line)
            else:
                good_lines.append(line)
    distinct = list(dict.fromkeys(good_lines))
    return {"good": good_lines, "broken": broken, "distinct": [json.loads(x) for x in distinct]}


def parse_order_date(text: str) -> datetime:
    for fmt in ORDER_DATE_FORMATS.values():
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    raise AssertionError(f"unexpected order_date format: {text!r}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return generate(tmp_path_factory.mktemp("demo"), rows=ROWS, seed=SEED)


@pytest.fixture(scope="module")
def loaded(demo: DemoFiles) -> dict[str, dict[str, Any]]:
    return {
        "customers": read_csv(demo.customers, CUSTOMERS_COLUMNS),
        "orders": read_csv(demo.orders, ORDERS_COLUMNS),
        "order_items": read_csv(demo.order_items, ORDER_ITEMS_COLUMNS),
        "payments": read_jsonl(demo.payments),
    }


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", rows=ROWS, seed=SEED)
    second = generate(tmp_path / "b", rows=ROWS, seed=SEED)
    for name in FILE_NAMES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first.manifest == second.manifest


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", rows=ROWS, seed=SEED)
    generate(tmp_path / "b", rows=ROWS, seed=SEED + 1)
    for name in ("customers.csv", "orders.csv", "order_items.csv", "payments.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes(), name


def test_rejects_non_positive_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, rows=0)


# --------------------------------------------------------------------------
# Layout and manifest
# --------------------------------------------------------------------------
def test_files_and_headers(demo: DemoFiles, loaded: dict[str, dict[str, Any]]) -> None:
    out_dir = demo.customers.parent
    for name in FILE_NAMES:
        assert (out_dir / name).is_file(), name
    assert demo.orders.parent == demo.order_items.parent == demo.payments.parent == out_dir
    assert loaded["customers"]["header"] == list(CUSTOMERS_COLUMNS)
    assert loaded["orders"]["header"] == list(ORDERS_COLUMNS)
    assert loaded["order_items"]["header"] == list(ORDER_ITEMS_COLUMNS)
    first_payment = loaded["payments"]["distinct"][0]
    assert tuple(first_payment) == PAYMENT_KEYS
    # UTF-8 with '\n' line endings only.
    for path in (demo.customers, demo.orders, demo.order_items, demo.payments):
        data = path.read_bytes()
        data.decode("utf-8")
        assert b"\r" not in data


def test_manifest_file_matches_returned_manifest(demo: DemoFiles) -> None:
    on_disk = json.loads((demo.customers.parent / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == demo.manifest
    assert on_disk["seed"] == SEED
    assert on_disk["rows"] == ROWS
    assert on_disk["customers"] == max(10, ROWS // 3)
    assert on_disk["reference_date"] == "2026-01-01"


@pytest.mark.parametrize("name", ["customers", "orders", "order_items", "payments"])
def test_manifest_counts_match_files(
    name: str, demo: DemoFiles, loaded: dict[str, dict[str, Any]]
) -> None:
    stats = demo.manifest["files"][name]
    data = loaded[name]
    path = getattr(demo, name)
    data_lines = path.read_text(encoding="utf-8").count("\n") - (0 if name == "payments" else 1)
    assert stats["lines_total"] == data_lines
    assert (
        stats["lines_total"]
        == stats["good_rows"] + stats["duplicate_rows"] + stats["malformed_rows"]
    )
    if name == "payments":
        assert stats["malformed_rows"] == len(data["broken"])
        assert stats["good_rows"] == len(data["distinct"])
        assert stats["duplicate_rows"] == len(data["good"]) - len(data["distinct"])
    else:
        assert stats["malformed_rows"] == len(data["short"])
        assert stats["good_rows"] == len(data["distinct"])
        assert stats["duplicate_rows"] == len(data["full"]) - len(data["distinct"])
        assert all(2 <= len(row) <= 3 for row in data["short"])


def test_row_counts_follow_rows_argument(
    demo: DemoFiles, loaded: dict[str, dict[str, Any]]
) -> None:
    customers = loaded["customers"]["distinct"]
    orders = loaded["orders"]["distinct"]
    items = loaded["order_items"]["distinct"]
    payments = loaded["payments"]["distinct"]
    assert sorted(int(r[0]) for r in customers) == list(range(1, max(10, ROWS // 3) + 1))
    assert sorted(int(r[0]) for r in orders) == list(range(1, ROWS + 1))
    assert 2.0 <= len(items) / ROWS <= 3.1
    lines_per_order = Counter(int(r[0]) for r in items)
    assert set(lines_per_order) == set(range(1, ROWS + 1))
    assert min(lines_per_order.values()) >= 1 and max(lines_per_order.values()) <= 5
    unpaid = ROWS - len(payments)
    assert unpaid == demo.manifest["dirt"]["orders"]["unpaid_orders"]
    assert 0 < unpaid < ROWS * 0.15


def test_dirt_present_in_every_file(demo: DemoFiles) -> None:
    # Fixed seed and size: every kind of structural dirt shows up at least once.
    files = demo.manifest["files"]
    assert files["customers"]["duplicate_rows"] > 0
    assert files["orders"]["duplicate_rows"] > 0
    assert files["payments"]["duplicate_rows"] > 0
    assert files["order_items"]["duplicate_rows"] == 0
    for name in ("customers", "orders", "order_items", "payments"):
        assert files[name]["malformed_rows"] > 0, name


# --------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------
def test_referential_integrity(loaded: dict[str, dict[str, Any]]) -> None:
    customer_ids = {int(r[0]) for r in loaded["customers"]["distinct"]}
    order_ids = {int(r[0]) for r in loaded["orders"]["distinct"]}
    assert {int(r[1]) for r in loaded["orders"]["distinct"]} <= customer_ids
    assert {int(r[0]) for r in loaded["order_items"]["distinct"]} <= order_ids
    payment_order_ids = [p["order_id"] for p in loaded["payments"]["distinct"]]
    assert set(payment_order_ids) <= order_ids
    assert len(payment_order_ids) == len(set(payment_order_ids)), "one payment per order"
    payment_ids = [p["payment_id"] for p in loaded["payments"]["distinct"]]
    assert len(payment_ids) == len(set(payment_ids))


def test_payment_amount_is_sum_of_items(loaded: dict[str, dict[str, Any]]) -> None:
    totals: Counter[int] = Counter()
    for order_id, _line, _sku, _name, quantity, unit_price in loaded["order_items"]["distinct"]:
        assert re.fullmatch(r"\d+\.\d{2}", unit_price), unit_price
        whole, cents = unit_price.split(".")
        totals[int(order_id)] += int(quantity) * (int(whole) * 100 + int(cents))
    for payment in loaded["payments"]["distinct"]:
        assert round(payment["amount"] * 100) == totals[payment["order_id"]]
        assert payment["method"] in {"card", "paypal", "bank_transfer"}
        assert ISO_SECONDS.match(payment["paid_at"])
        if payment["method"] == "card":
            assert re.fullmatch(r"\d{4}", payment["card_last4"])
        else:
            assert payment["card_last4"] is None


def test_order_values_and_dates(demo: DemoFiles, loaded: dict[str, dict[str, Any]]) -> None:
    signups = {int(r[0]): datetime.fromisoformat(r[10]) for r in loaded["customers"]["distinct"]}
    formats: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    previous = datetime.min
    for _order_id, customer_id, order_date, status, currency, shipping_city in sorted(
        loaded["orders"]["distinct"], key=lambda r: int(r[0])
    ):
        when = parse_order_date(order_date)
        formats["DD/MM/YYYY HH:MM" if "/" in order_date else "YYYY-MM-DD HH:MM:SS"] += 1
        assert datetime(2024, 1, 1) <= when < datetime(2026, 1, 1)
        assert when >= previous.replace(second=0), "order ids increase with order_date"
        previous = when
        assert when >= signups[int(customer_id)].replace(second=0), "order placed before signup"
        assert currency in {"EUR", "GBP", "USD"}
        assert shipping_city
        statuses[status] += 1
        if status:
            assert status.strip().lower() in {
                "placed",
                "shipped",
                "delivered",
                "cancelled",
                "returned",
            }
    assert set(formats) == set(ORDER_DATE_FORMATS)
    assert dict(formats) == demo.manifest["dirt"]["orders"]["order_date_formats"]
    assert statuses[""] == demo.manifest["dirt"]["orders"]["empty_status"]
    messy = sum(n for s, n in statuses.items() if s and s != s.strip().lower())
    assert messy == demo.manifest["dirt"]["orders"]["messy_status"] > 0


def test_customer_values_and_dirt(demo: DemoFiles, loaded: dict[str, dict[str, Any]]) -> None:
    customers = loaded["customers"]["distinct"]
    dirt = demo.manifest["dirt"]["customers"]
    formats: Counter[str] = Counter()
    emails: list[str] = []
    for row in customers:
        record = dict(zip(CUSTOMERS_COLUMNS, row, strict=True))
        matched = [
            name for name, pattern in BIRTH_FORMATS.items() if pattern.match(record["birth_date"])
        ]
        assert len(matched) == 1, record["birth_date"]
        formats[matched[0]] += 1
        fmt = {"YYYY-MM-DD": "%Y-%m-%d", "DD/MM/YYYY": "%d/%m/%Y", "YYYY/MM/DD": "%Y/%m/%d"}[
            matched[0]
        ]
        born = datetime.strptime(record["birth_date"], fmt)
        assert 1940 <= born.year <= 2007
        assert ISO_SECONDS.match(record["signup_at"])
        assert datetime.fromisoformat(record["signup_at"]) < datetime(2026, 1, 1)
        assert record["country"] in {"US", "GB", "DE", "FR"}
        assert record["first_name"].strip() and record["last_name"].strip()
        assert record["street_address"] and record["city"] and record["postcode"]
        if record["email"]:
            email = record["email"].strip().lower()
            assert re.fullmatch(r"[a-z_.]+\d+@[a-z.]+", email), email
            emails.append(email)
    assert set(formats) == set(BIRTH_FORMATS), "all three birth_date formats present"
    assert dict(formats) == dirt["birth_date_formats"]
    assert formats["YYYY-MM-DD"] > formats["DD/MM/YYYY"] > formats["YYYY/MM/DD"]
    assert len(emails) == len(set(emails)), "emails unique per customer"
    column = {
        name: [dict(zip(CUSTOMERS_COLUMNS, r, strict=True))[name] for r in customers]
        for name in CUSTOMERS_COLUMNS
    }
    assert column["email"].count("") == dirt["empty_email"] > 0
    assert column["phone"].count("") == dirt["empty_phone"] > 0
    assert sum(v != v.strip() for v in column["first_name"]) == dirt["padded_first_name"]
    assert sum(v != v.strip() for v in column["last_name"]) == dirt["padded_last_name"]
    assert sum(v != v.strip() for v in column["email"]) == dirt["padded_email"]
    assert sum(any(c.isupper() for c in v) for v in column["email"]) == dirt["uppercase_email"]


def test_notes_mix_harmless_text_and_pii(
    demo: DemoFiles, loaded: dict[str, dict[str, Any]]
) -> None:
    notes = [row[CUSTOMERS_COLUMNS.index("notes")] for row in loaded["customers"]["distinct"]]
    counts = demo.manifest["dirt"]["customers"]["notes"]
    assert notes.count("") == counts["empty"]
    assert len(notes) == sum(counts.values())
    assert sum("@" in n for n in notes) == counts["pii_email"] > 0
    assert counts["pii_phone"] > 0 and counts["pii_name"] > 0 and counts["harmless"] > 0


def test_larger_run_rates_are_close_to_constants(tmp_path: Path) -> None:
    manifest = generate(tmp_path, rows=6000, seed=3).manifest
    files, rates = manifest["files"], manifest["rates"]
    customers = files["customers"]["good_rows"]
    assert customers == 2000
    assert (
        abs(files["customers"]["duplicate_rows"] / customers - rates["customer_duplicate"]) < 0.01
    )
    assert abs(files["orders"]["duplicate_rows"] / 6000 - rates["order_duplicate"]) < 0.005
    assert abs(files["orders"]["malformed_rows"] / 6000 - rates["csv_malformed"]) < 0.004
    assert (
        abs(manifest["dirt"]["customers"]["empty_email"] / customers - rates["email_null"]) < 0.015
    )
    iso = manifest["dirt"]["customers"]["birth_date_formats"]["YYYY-MM-DD"]
    assert abs(iso / customers - 0.70) < 0.04
