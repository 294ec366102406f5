"""In-text anonymisation asks Presidio only for the free-text entities, and that changes no answer.

The corpus is generated here (seeded): notes in several languages with e-mail addresses, phone
numbers in national and international formats, names from the name lists, card numbers that pass
Luhn, IBANs, IP addresses and US SSNs, mixed with what other recognizers claim (dates, postcodes,
street addresses, URLs, order numbers), which must not change how the free-text spans come out.
"""

from __future__ import annotations

import random

import pytest

from compliance.analyzer import analyzer
from compliance.policies import anonymised_texts


def _luhn(prefix: str, length: int, rng: random.Random) -> str:
    digits = [int(c) for c in prefix] + [rng.randrange(10) for _ in range(length - len(prefix) - 1)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def corpus(n: int = 300, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    firsts = ["Anna", "Derek", "Klaus-Dieter", "Chloé", "Mohammed", "Siobhan", "Jürgen", "Mary", "Luca"]
    lasts = ["Whitehead", "Dubois", "Müller", "O'Brien", "Rossi", "Kowalski", "Nguyen", "Smith"]
    phones = ["+33 2 50 12 88 37", "04 91 28 54 34", "+44 (0)117 432 9881", "01746 862559", "+49 30 12345678",
              "030 1234567", "(415) 555-0132", "+1 212 555 0199", "+39 06 6982 1234", "0611 22 33 44"]
    decoys = ["order 123456", "on 2024-03-01", "postcode SW1A 1AA", "75008 Paris", "see https://shop.example.com/o/9",
              "12 rue de la Paix", "ref A-77-B", "qty 3 x 19.99", "ISO 8601", "v2.3.1"]
    templates = [
        "Please call {phone} before delivery", "prefers email {email}", "Deliver to neighbour {name} if not home",
        "Card on file {card}, expires 09/27", "IBAN {iban} for refunds", "login from {ip} flagged",
        "SSN {ssn} on the form", "Rufen Sie {phone} an, {decoy}", "Laisser chez {name}, {decoy}",
        "{decoy}; contact {email} or {phone}", "Gift for {name}", "{decoy}", "nothing to see here",
    ]
    out = []
    for _ in range(n):
        first, last = rng.choice(firsts), rng.choice(lasts)
        text = rng.choice(templates).format(
            phone=rng.choice(phones), name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}{rng.randrange(1000)}@mail.example.org".replace("'", ""),
            card=_luhn(rng.choice(["4", "51", "37"]), 16, rng), iban=rng.choice(
                ["DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819", "FR1420041010050500013M02606"]),
            ip=f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            ssn=f"{rng.randrange(100, 666)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}",
            decoy=rng.choice(decoys),
        )
        out.append(text)
    return sorted(set(out))


def test_asking_for_the_free_text_entities_only_gives_every_recognizers_answer():
    texts = corpus()
    every = sorted(analyzer().get_supported_entities(language="en"))
    assert len(every) > 10  # the comparison means something: many more recognizers than the free-text ones
    assert anonymised_texts(texts) == anonymised_texts(texts, entities=every)


def test_each_text_meeting_only_the_recognizers_that_can_match_it_gives_every_answer():
    texts = corpus(600, seed=11) + ["", " ", "12", "a@b", "+1", "Ünïcödé only", "ALL CAPS NOTE 5551234"]
    every = sorted(analyzer().get_supported_entities(language="en"))
    full = anonymised_texts(texts, prefilter=False)
    assert anonymised_texts(texts) == full
    assert anonymised_texts(texts, entities=every) == anonymised_texts(texts, entities=every, prefilter=False)
    assert len(full) > 300  # most of the corpus has something to anonymise


def test_the_corpus_exercises_every_free_text_entity():
    changed = dict(anonymised_texts(corpus()))
    seen = " ".join(changed.values())
    for entity in ("<EMAIL_ADDRESS>", "<PHONE_NUMBER>", "<PERSON>", "<CREDIT_CARD>", "<IBAN_CODE>", "<IP_ADDRESS>"):
        assert entity in seen, entity
    assert "nothing to see here" not in changed


# --- writing the anonymised values back (Warehouse.replace_values) -----------------------------
# Values a statement per pair or a careless literal would break: quotes, backslashes, a newline,
# non-ASCII, SQL text, a value that is another pair's new value (replaced once, not twice), one
# listed old value that is absent, and rows that must stay as they are (unlisted, NULL).
TRICKY = ["O'Brien's note", "back\\slash", "two\nlines", "Jürgen Müller 📦", "'); DROP TABLE x; --", "<PERSON>",
          "plain", "same"]


def check_replace_values(wh, table: str, *, chunk: int | None = None) -> None:
    """Stage ``chart.<table>``, replace through ``wh.replace_values`` and compare with the same map in Python."""
    rows = [(i, v) for i, v in enumerate([*TRICKY, None, "keep me", "same"])]
    mapping = [("O'Brien's note", "<PERSON>'s note"), ("back\\slash", "b"), ("two\nlines", "2 lines"),
               ("Jürgen Müller 📦", "<PERSON> 📦"), ("'); DROP TABLE x; --", "<SQL>"), ("<PERSON>", "<P>"),
               ("plain", "<PERSON>"), ("same", "same"), ("absent", "never")]
    with wh.cursor() as cur:
        cur.execute(f"CREATE TABLE chart.{table} (id integer, note text)")
        cur.executemany(f"INSERT INTO chart.{table} VALUES (%s, %s)", rows)
    if chunk is not None:
        wh.REPLACE_CHUNK = chunk  # an instance attribute: several statements, not one
    wh.replace_values("chart", table, "note", mapping)
    new = dict(mapping)
    with wh.cursor() as cur:
        got = sorted(cur.execute(f"SELECT id, note FROM chart.{table}").fetchall())
        assert not wh.table_exists("chart", f"{table}__pii_map")
    assert got == [(i, new.get(v, v) if v is not None else None) for i, v in rows]


def test_anonymised_values_are_written_back_exactly_across_statements(wh):
    check_replace_values(wh, "notes_stg", chunk=3)


@pytest.mark.parametrize("in_processes", [False, True], ids=["in the worker", "in two spawned processes"])
def test_anonymise_text_columns_writes_what_presidio_says(wh, settings, in_processes):
    """The whole pass on a staged table: each distinct note becomes anonymised_texts' answer, NULL stays NULL."""
    from compliance.policies import anonymise_text_columns

    if in_processes:  # the threshold lowered: this column's 60 notes go to two children
        settings.ATLAS_PII_TEXT_PARALLEL_MIN, settings.ATLAS_PII_TEXT_PROCESSES = 10, 2
    notes = corpus(60)
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE chart.people_stg (id integer, note text)")
        cur.executemany("INSERT INTO chart.people_stg VALUES (%s, %s)",
                        [(i, n) for i, n in enumerate([*notes, *notes[:10], None])])
    expected = dict(anonymised_texts(notes, processes=1))
    assert anonymise_text_columns(wh, "chart", "people_stg", ["note"]) == {"note": len(expected)}
    with wh.cursor() as cur:
        got = dict(cur.execute("SELECT id, note FROM chart.people_stg").fetchall())
    source = [*notes, *notes[:10], None]
    assert got == {i: (expected.get(n, n) if n is not None else None) for i, n in enumerate(source)}
    assert len(expected) > 20  # the corpus has PII in most notes


# --- many texts: analysed in spawned processes (compliance/free_text.py) ------------------------
def test_texts_analysed_in_two_processes_give_the_mapping_of_one_in_the_same_order():
    texts = corpus(600, seed=5)
    one = anonymised_texts(texts, processes=1)
    two = anonymised_texts(texts, processes=2)
    assert two == one
    assert len(one) > 300


def test_small_columns_stay_in_the_process_and_large_ones_use_the_setting(settings):
    from compliance.free_text import MAX_PROCESSES, processes_for

    settings.ATLAS_PII_TEXT_PARALLEL_MIN, settings.ATLAS_PII_TEXT_PROCESSES = 1000, 3
    assert processes_for(999) == 1
    assert processes_for(1000) == 3
    settings.ATLAS_PII_TEXT_PROCESSES = 64
    assert processes_for(10**6) == MAX_PROCESSES
    assert processes_for(3, processes=8) == 3  # never more processes than texts
    assert processes_for(1, processes=2) == 1
