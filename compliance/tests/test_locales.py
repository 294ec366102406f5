"""Detection across locales: traps first, then multilingual tables, determinism, huge values, bad columns.

The values come from :mod:`benchmarks.pii.evalset` (seeded generators and Faker's locale
providers), under column names of several languages; the end-to-end tests load them
into the test's warehouse (DuckDB, or PostgreSQL with ``ATLAS_TEST_ENGINE=postgres``).
"""

from __future__ import annotations

import random

import pytest
from faker import Faker

from benchmarks.pii.evalset import build, version
from compliance import detection
from compliance.detection import classify, classify_columns, name_evidence
from compliance.models import PiiFinding
from pipelines.models import Dataset

pytestmark = pytest.mark.slow


def _found(samples: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {c: set() for c in samples}
    for v in classify_columns(samples):
        out[v.column].add("FREE_TEXT" if v.free_text else v.entity)
    return out


def test_traps_named_like_pii_or_shaped_like_it_are_not_pii():
    rng = random.Random(12)
    fake = Faker("en_US")
    fake.seed_instance(12)
    samples = {
        "email_opt_in": [rng.choice(["true", "false"]) for _ in range(60)],
        "newsletter_email_consent": [rng.choice(["ja", "nein", "J", "N"]) for _ in range(60)],
        "phone_verified": [rng.choice(["0", "1"]) for _ in range(60)],
        "firmware_version": [version(rng) for _ in range(60)],  # a.b.c.d, not an IP address
        "client_build": [f"{rng.randrange(1, 9)}.{rng.randrange(0, 20)}.{rng.randrange(0, 99)}.{rng.randrange(0, 9)}"
                         for _ in range(60)],
        "company": [fake.company() for _ in range(60)],
        "unternehmen": [Faker("de_DE").company() for _ in range(60)],
        "user_agent": [fake.user_agent() for _ in range(60)],
        "product": [f"{fake.color_name()} {fake.word().title()} Mug" for _ in range(60)],
        "order_id": [f"ORD-{2020 + i % 5}-{i:06d}" for i in range(60)],
        "order_number": [str(10**9 + i * 7919) for i in range(60)],
        "fiscal_year": [f"FY{2010 + i % 15}/{11 + i % 15}" for i in range(60)],
        "geschaeftsjahr": [str(2000 + i % 25) for i in range(60)],
        "signup_at": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} 10:{i % 60:02d}:00" for i in range(60)],
        "order_date": [f"{2022 + i % 3}-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(60)],
        "sku": [f"SKU-{rng.randrange(10**5):05d}" for _ in range(60)],
        "amount": [f"{rng.uniform(1, 999):.2f}" for _ in range(60)],
        "ticket_ref": [str(rng.randrange(10**8, 10**9)) for _ in range(60)],  # 9 digits: some pass the 11-proef
    }
    found = {c: e for c, e in _found(samples).items() if e}
    assert found == {}


def test_multilingual_column_names_give_evidence():
    expected = {
        "geburtsdatum": "DATE_OF_BIRTH", "date_naissance": "DATE_OF_BIRTH", "geboortedatum": "DATE_OF_BIRTH",
        "fecha_nacimiento": "DATE_OF_BIRTH", "data_nascita": "DATE_OF_BIRTH", "dateDeNaissance": "DATE_OF_BIRTH",
        "geburtsort": "LOCATION", "lieu_de_naissance": "LOCATION", "ort": "LOCATION", "ville": "LOCATION",
        "plaats": "LOCATION", "ciudad": "LOCATION", "Città": "LOCATION", "woonplaats": "LOCATION",
        "code_postal": "POSTCODE", "plz": "POSTCODE", "postcode": "POSTCODE", "codigo_postal": "POSTCODE",
        "cap": "POSTCODE", "Straße": "STREET_ADDRESS", "adresse": "STREET_ADDRESS", "indirizzo": "STREET_ADDRESS",
        "direccion": "STREET_ADDRESS", "vorname": "PERSON", "nachname": "PERSON", "prenom": "PERSON",
        "achternaam": "PERSON", "apellidos": "PERSON", "cognome": "PERSON", "kontoinhaber": "PERSON",
        "account_holder": "PERSON", "telefonnummer": "PHONE_NUMBER", "telefono": "PHONE_NUMBER",
        "courriel": "EMAIL_ADDRESS", "steuer_id": "DE_TAX_ID", "bsn": "NL_BSN", "ni_number": "UK_NINO",
        "codice_fiscale": "IT_FISCAL_CODE", "dni": "ES_NIF", "numero_securite_sociale": "FR_NIR",
        "x_forwarded_for": "IP_ADDRESS", "referrer": "URL",
    }
    got = {c: name_evidence(c)[0] for c in expected}
    assert {c: e for c, e in got.items() if e != expected[c]} == {}
    for not_pii in ("email_opt_in", "phone_verified", "product_name", "company_name", "export", "report", "sort_order",
                    "support_ticket", "email_domain", "country"):
        assert name_evidence(not_pii)[0] is None, not_pii


def test_each_locale_table_is_classified_with_a_confidence():
    tables = build(seed=77, rows=30)
    wrong = {}
    for name in ("de_kunden", "fr_clients", "nl_klanten", "uk_customers", "us_users", "es_clientes", "it_clienti"):
        samples = {c: values for c, (values, _) in tables[name].items()}
        found = _found(samples)
        for column, (_, label) in tables[name].items():
            if found[column] != ({label} - {None}):
                wrong[f"{name}.{column}"] = (label, sorted(found[column]))
    assert wrong == {}
    verdicts = classify_columns({"email": [Faker("fr_FR").email() for _ in range(30)], "holder": ["Anna Müller"] * 3})
    by_column = {v.column: v for v in verdicts}
    assert by_column["email"].confidence >= 0.95  # values and name agree
    assert 0.3 < by_column["holder"].confidence < 1.0


def test_values_speak_when_column_names_do_not():
    tables = build(seed=78, rows=40)
    samples = {c: values for c, (values, _) in tables["export_misc"].items()}
    found = _found(samples)
    wrong = {c: (label, sorted(found[c])) for c, (_, label) in tables["export_misc"].items()
             if found[c] != ({label} - {None})}
    assert wrong == {}


def test_birth_dates_by_value_and_street_addresses_are_not_free_text():
    rng = random.Random(3)
    births = [f"{rng.randrange(1,29):02d}.{rng.randrange(1,13):02d}.{rng.randrange(1940, 2005)}" for _ in range(50)]
    streets = [Faker(loc).street_address() for loc in ("de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL") for _ in range(12)]
    found = _found({"col_x": births, "col_y": streets, "hired_on": [f"20{10 + i % 14}-03-01" for i in range(50)]})
    assert found == {"col_x": {"DATE_OF_BIRTH"}, "col_y": {"STREET_ADDRESS"}, "hired_on": set()}


def test_urls_carrying_emails_and_forwarded_for_lists():
    fake = Faker("en_GB")
    fake.seed_instance(8)
    samples = {
        "link": [f"https://shop.example/unsubscribe?u={fake.email().replace('@', '%40')}" for _ in range(40)],
        "hops": [", ".join(fake.ipv4_public() for _ in range(1 + i % 3)) for i in range(40)],
        "website": [f"https://{fake.domain_name()}/" for _ in range(40)],
    }
    assert _found(samples) == {"link": {"EMAIL_ADDRESS"}, "hops": {"IP_ADDRESS"}, "website": set()}


def test_a_huge_value_is_cut_and_recorded_not_fatal():
    huge = "Kontakt: anna.schmidt@example.de " + "x" * (1 << 20)
    result = classify({"bemerkung": [huge, "Bitte anrufen", "Paket beim Nachbarn abgeben"]})
    assert result.truncated == {"bemerkung": 1} and result.column_errors == {}
    assert {v.entity for v in result.verdicts} == {"EMAIL_ADDRESS"}


def test_one_bad_column_is_recorded_and_the_others_classified(monkeypatch):
    real = detection._decide

    def fails_on(column, values, results):
        if column == "broken":
            raise ValueError("boom")
        return real(column, values, results)

    monkeypatch.setattr(detection, "_decide", fails_on)
    result = classify({"broken": ["x"], "email": ["a@example.com", "b@example.org"]})
    assert result.column_errors == {"broken": "classification failed (ValueError)"}
    assert [v.entity for v in result.verdicts] == ["EMAIL_ADDRESS"]


def test_classification_is_deterministic():
    tables = build(seed=79, rows=20)
    samples = {c: values for c, (values, _) in tables["uk_customers"].items()}
    first = [vars(v) for v in classify_columns(samples)]
    assert first and first == [vars(v) for v in classify_columns(samples)]
    assert build(seed=79, rows=20) == tables  # the evaluation data itself is seeded


# --- end to end: the warehouse of the test engine -------------------------------------------------
MULTILINGUAL = {  # column in the fixture table -> (evalset table, column)
    "vorname": ("de_kunden", "vorname"), "geburtsdatum": ("de_kunden", "geburtsdatum"),
    "steuer_id": ("de_kunden", "steuer_id"), "plz": ("de_kunden", "plz"), "ville": ("fr_clients", "ville"),
    "nir": ("fr_clients", "numero_securite_sociale"), "courriel": ("fr_clients", "courriel"),
    "bsn": ("nl_klanten", "bsn"), "postcode_nl": ("nl_klanten", "postcode"), "adres": ("nl_klanten", "adres"),
    "ni_number": ("uk_customers", "ni_number"), "telefono": ("es_clientes", "telefono"),
    "dni": ("es_clientes", "dni"), "codice_fiscale": ("it_clienti", "codice_fiscale"),
    "iban": ("it_clienti", "iban"), "app_version": ("us_users", "app_version"),
    "email_opt_in": ("us_users", "email_opt_in"), "firma": ("de_kunden", "firma"),
    "bemerkung": ("de_kunden", "bemerkung"),
}


def _load(wh, rows: int = 40, extra: dict[str, list[str]] | None = None) -> tuple[Dataset, dict]:
    tables = build(seed=81, rows=rows)
    columns = {c: tables[t][src][0] for c, (t, src) in MULTILINGUAL.items()}
    labels = {c: tables[t][src][1] for c, (t, src) in MULTILINGUAL.items()}
    columns.update(extra or {})
    names = list(columns)
    with wh.cursor() as cur:
        cur.execute(f"CREATE TABLE explore.kunden ({', '.join(f'{wh.quote(c)} text' for c in names)})")
        for i in range(rows):
            values = ", ".join(wh.literal(columns[c][i]) if i < len(columns[c]) else "NULL" for c in names)
            cur.execute(f"INSERT INTO explore.kunden VALUES ({values})")
    return Dataset.objects.create(name="kunden", layer="explore", table="kunden"), labels


def _findings(dataset) -> dict[str, tuple[str, bool, float]]:
    return {f.column: (f.entity, f.free_text, f.confidence) for f in PiiFinding.objects.filter(dataset=dataset)}


def test_a_multilingual_table_is_scanned_end_to_end_the_same_every_time(wh):
    dataset, labels = _load(wh)
    first = detection.scan_dataset(dataset, sample_size=50)
    assert first.status == "succeeded", first.error
    found = _findings(dataset)
    got = {c: ("FREE_TEXT" if free else e) for c, (e, free, _) in found.items()}
    assert got == {c: label for c, label in labels.items() if label}
    assert all(0 < conf <= 1 for _, _, conf in found.values())
    for _ in range(1):  # the same data, the same sample, the same findings
        again = detection.scan_dataset(dataset, sample_size=50)
        assert again.details == first.details and _findings(dataset) == found


def test_row_sampling_of_a_large_table_is_seeded(wh, settings):
    settings.PII_SCAN_ROWS = 30  # the 80-row table is row-sampled first
    dataset, _ = _load(wh)
    samples = [wh.sample_distinct("explore", "kunden", ["courriel", "bsn"], limit=10, scan_rows=30) for _ in range(3)]
    assert samples[0] == samples[1] == samples[2] and 0 < len(samples[0]["courriel"]) <= 10


def test_a_huge_value_in_the_warehouse_is_cut_and_the_scan_succeeds(wh):
    huge = "Bitte anrufen: anna@example.de " + "z" * (1 << 20)
    dataset, _ = _load(wh, rows=20, extra={"kommentar": [huge] + ["Paket beim Nachbarn abgeben"] * 19})
    scan = detection.scan_dataset(dataset, sample_size=30)
    assert scan.status == "succeeded", scan.error
    assert scan.details["truncated_values"] == {"max_chars": detection.MAX_VALUE_CHARS, "columns": {"kommentar": 1}}
    assert PiiFinding.objects.filter(dataset=dataset, column="kommentar", entity="EMAIL_ADDRESS").exists()


def test_a_column_that_cannot_be_sampled_is_recorded_and_the_scan_goes_on(wh, monkeypatch):
    dataset, _ = _load(wh, rows=20)
    real = type(wh).sample_distinct

    def sample(self, schema, table, columns, **kwargs):
        if "bsn" in columns:
            raise RuntimeError("cannot cast value 'secret@example.com'")
        return real(self, schema, table, columns, **kwargs)

    monkeypatch.setattr(type(wh), "sample_distinct", sample)
    scan = detection.scan_dataset(dataset, sample_size=20)
    assert scan.status == "succeeded", scan.error
    assert scan.details["column_errors"] == {"bsn": "sampling failed (RuntimeError)"}
    assert "secret" not in str(scan.details)
    assert PiiFinding.objects.filter(dataset=dataset, column="courriel").exists()
    assert scan.columns_scanned == len(MULTILINGUAL) - 1


def test_the_steward_sees_the_confidence_in_the_admin_and_the_api(wh, client):
    from .demo import user_in_role

    dataset, _ = _load(wh, rows=20)
    assert detection.scan_dataset(dataset, sample_size=20).status == "succeeded"
    finding = PiiFinding.objects.get(dataset=dataset, column="courriel")
    assert finding.confidence > 0.9
    client.force_login(user_in_role("steward", "Steward"))
    listing = client.get("/admin/compliance/piifinding/").content.decode()
    assert "column-confidence" in listing
    detail = client.get(f"/admin/compliance/piifinding/{finding.pk}/change/").content.decode()
    assert "Confidence" in detail
    body = client.get(f"/api/v1/pii-findings/{finding.pk}/").json()
    assert body["confidence"] == pytest.approx(finding.confidence)
