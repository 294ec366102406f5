"""Detection: traps, locales, free text, and a labelled evaluation set with a precision/recall floor."""

from __future__ import annotations

import csv
import random
from collections import Counter

import pytest
from faker import Faker

from compliance.detection import classify_columns, name_evidence

pytestmark = pytest.mark.slow


def test_name_evidence_reads_the_column_name_not_lookalikes():
    assert name_evidence("email_address")[0] == "EMAIL_ADDRESS"
    assert name_evidence("ip_address")[0] == "IP_ADDRESS"
    assert name_evidence("street_address")[0] == "STREET_ADDRESS"
    assert name_evidence("dateOfBirth")[0] == "DATE_OF_BIRTH"
    assert name_evidence("first_name")[0] == "PERSON"
    assert name_evidence("product_name")[0] is None
    assert name_evidence("card_last4")[0] is None


def test_name_evidence_reads_numbered_columns_and_places_of_birth():
    """Found by the blind set (benchmarks/pii/blindset.py): numbers glued to the word, a place word with a birth word."""
    assert name_evidence("zip5")[0] == "POSTCODE"
    assert name_evidence("achternaam_1")[0] == "PERSON"
    assert name_evidence("tel2_home")[0] == "PHONE_NUMBER"
    assert name_evidence("ciudad_nascita")[0] == "LOCATION"
    assert name_evidence("birthTown")[0] == "LOCATION"
    assert name_evidence("geburtsdatum")[0] == "DATE_OF_BIRTH"
    assert name_evidence("ipv4")[0] == "IP_ADDRESS"  # a number that is part of the word stays
    assert name_evidence("order_no_2")[0] is None
    assert name_evidence("email_opt_in_2")[0] is None


def test_traps_are_not_pii():
    rng = random.Random(3)
    samples = {
        "order_id": [str(rng.randrange(10**9, 10**10)) for _ in range(80)],  # NHS/phone look-alikes
        "year": [str(rng.randrange(1950, 2025)) for _ in range(60)],  # not a CVV
        "customer_ref": [str(rng.randrange(1, 99999)) for _ in range(80)],  # a numeric id is not a PERSON
        "status": ["placed", "shipped", "delivered", "cancelled", "returned"],
        "amount": [f"{rng.uniform(1, 999):.2f}" for _ in range(80)],
        "website": ["https://example.com/a", "https://shop.example.org/b", "http://example.net/"],
    }
    found = {(v.column, v.entity) for v in classify_columns(samples)}
    assert found == set(), found


def test_an_email_column_is_email_not_url():
    emails = [Faker("en_US").unique.email() for _ in range(50)]
    verdicts = classify_columns({"contact": emails})
    assert [(v.entity, v.free_text) for v in verdicts] == [("EMAIL_ADDRESS", False)]
    assert verdicts[0].share == 1.0 and verdicts[0].mean_score > 0.9 and verdicts[0].sample_size == 50


def test_free_text_gets_one_finding_per_entity_inside_it():
    notes = ["Leave at the back door", "Ring the bell twice", "Gift for Anna Schmidt",
             "Send the invoice to ann@example.com", "Call me on +44 20 7946 0958", "Deliver after 5pm"]
    verdicts = classify_columns({"notes": notes})
    assert {v.entity for v in verdicts} == {"EMAIL_ADDRESS", "PERSON", "PHONE_NUMBER"}
    assert all(v.free_text for v in verdicts)


def _labelled_columns(tmp_path) -> tuple[dict[str, list[str]], dict[str, str | None]]:
    """Columns from the demo generator and Faker in four locales, with their true entity."""
    from demo.generator import generate

    files = generate(tmp_path / "demo", rows=600, seed=11)
    with open(files.customers, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if len(r) == 12 and None not in r.values()]
    col = lambda name: sorted({r[name].strip() for r in rows if r[name] and r[name].strip()})[:200]  # noqa: E731
    samples = {name: col(name) for name in ("customer_id", "first_name", "last_name", "email", "phone",
                                           "street_address", "city", "postcode", "country", "birth_date",
                                           "signup_at", "notes")}
    labels: dict[str, str | None] = {
        "customer_id": None, "first_name": "PERSON", "last_name": "PERSON", "email": "EMAIL_ADDRESS",
        "phone": "PHONE_NUMBER", "street_address": "STREET_ADDRESS", "city": "LOCATION", "postcode": "POSTCODE",
        "country": None, "birth_date": "DATE_OF_BIRTH", "signup_at": None, "notes": "FREE_TEXT",
    }
    fakers = [Faker(loc) for loc in ("en_US", "en_GB", "de_DE", "fr_FR")]
    for f in fakers:
        f.seed_instance(5)
    pick = lambda fn: [fn(fakers[i % 4]) for i in range(120)]  # noqa: E731
    extra = {
        # Unhelpful names: the values have to speak.
        "contact_value": (pick(lambda f: f.email()), "EMAIL_ADDRESS"),
        "holder": (pick(lambda f: f.name()), "PERSON"),
        "col_a": (pick(lambda f: f.iban()), "IBAN_CODE"),
        "col_b": (pick(lambda f: f.credit_card_number()), "CREDIT_CARD"),
        "col_c": (pick(lambda f: f.ipv4()), "IP_ADDRESS"),
        "col_d": ([Faker("en_US").ssn() for _ in range(120)], "US_SSN"),
        "ip_v6": (pick(lambda f: f.ipv6()), "IP_ADDRESS"),
        # Look-alikes that are not personal data.
        "order_number": ([str(10**9 + i * 7919) for i in range(120)], None),
        "fiscal_year": ([str(1990 + i % 35) for i in range(120)], None),
        "sku": ([f"APP-{i:05d}" for i in range(120)], None),
        "product_name": (pick(lambda f: f"{f.color_name()} {f.word().title()} Mug"), None),
        "currency": (["EUR", "GBP", "USD"], None),
        "price": ([f"{i * 1.37:.2f}" for i in range(1, 121)], None),
        "uuid": (pick(lambda f: f.uuid4()), None),
    }
    for name, (values, label) in extra.items():
        samples[name] = values
        labels[name] = label
    return samples, labels


def test_evaluation_set_precision_and_recall(tmp_path, settings, capsys):
    samples, labels = _labelled_columns(tmp_path)
    predicted: dict[str, set[str]] = {c: set() for c in samples}
    for v in classify_columns(samples):
        predicted[v.column].add("FREE_TEXT" if v.free_text else v.entity)
    tp, fp, fn = Counter(), Counter(), Counter()
    for column, truth in labels.items():
        got = predicted[column]
        for entity in got:
            (tp if entity == truth else fp)[entity] += 1
        if truth and truth not in got:
            fn[truth] += 1
    entities = sorted(set(tp) | set(fp) | set(fn))
    lines = ["entity               precision  recall"]
    for e in entities:
        p = tp[e] / (tp[e] + fp[e]) if tp[e] + fp[e] else 1.0
        r = tp[e] / (tp[e] + fn[e]) if tp[e] + fn[e] else 1.0
        lines.append(f"{e:<20} {p:>9.2f} {r:>7.2f}")
    total_p = sum(tp.values()) / max(1, sum(tp.values()) + sum(fp.values()))
    total_r = sum(tp.values()) / max(1, sum(tp.values()) + sum(fn.values()))
    lines.append(f"{'ALL':<20} {total_p:>9.2f} {total_r:>7.2f}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
        print("wrong:", {c: (labels[c], sorted(predicted[c])) for c in labels if predicted[c] != ({labels[c]} - {None})})
    assert total_p >= 0.9 and total_r >= 0.9
    for e in ("EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON", "DATE_OF_BIRTH", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS"):
        assert tp[e] and not fp[e], (e, tp[e], fp[e], fn[e])
