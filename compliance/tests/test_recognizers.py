"""National-ID validators and recognizers: valid check digits pass, one wrong digit fails."""

from __future__ import annotations

import random

import pytest

from benchmarks.pii.evalset import bsn, nino, nir, steuer_id, us_ssn
from compliance.recognizers import (
    valid_de_tax_id,
    valid_es_nif,
    valid_fr_nir,
    valid_it_fiscal_code,
    valid_nl_bsn,
    valid_uk_nino,
)


def _flip_last_digit(code: str) -> str:
    i = max(i for i, ch in enumerate(code) if ch.isdigit())
    return code[:i] + str((int(code[i]) + 1) % 10) + code[i + 1 :]


@pytest.mark.parametrize(
    ("validator", "valid", "invalid"),
    [
        # Examples from the issuers' documentation and well-known test numbers.
        (valid_de_tax_id, ["86095742719", "86 095 742 719", "47036892816"],
         ["86095742718", "06095742719", "12345678901", "11111111111", "8609574271", "860957427190", ""]),
        (valid_fr_nir, ["2 55 08 14 168 025 38", "255081416802538", "1 84 12 2A 123 457 96"],
         ["255081416802539", "355081416802538", "2551314168025", "2 55 08 14 168 025 3X", "abc"]),
        (valid_nl_bsn, ["111222333", "123456782", "1112.22.333"],
         ["111222334", "123456789", "000000000", "12345678", "1234567890", "11122233A"]),
        (valid_uk_nino, ["AB123456C", "AB 12 34 56 C", "ce 12 34 56 d"],
         ["ZZ123456A", "AB123456E", "DA123456A", "AO123456A", "GB123456A", "AB12345C", "123456789"]),
        (valid_es_nif, ["12345678Z", "12345678-Z", "X1234567L", "Y1234567X", "Z1234567R"],
         ["12345678A", "X1234567A", "1234567Z", "W1234567L", "ABCDEFGHZ"]),
        (valid_it_fiscal_code, ["RSSMRA85T10A562S", "rssmra85t10a562s", "RSSMRA85T10A56NH"],
         ["RSSMRA85T10A562T", "RSSMRA85Z10A562S", "RSSMRA85T10A562", "1SSMRA85T10A562S"]),
    ],
)
def test_validators_accept_valid_and_refuse_invalid_check_digits(validator, valid, invalid):
    assert [v for v in valid if not validator(v)] == []
    assert [v for v in invalid if validator(v)] == []


@pytest.mark.parametrize(
    ("make", "validator"),
    [(steuer_id, valid_de_tax_id), (bsn, valid_nl_bsn), (lambda r: nir(r, __import__("datetime").date(1980, 5, 1)),
                                                       valid_fr_nir)],
)
def test_generated_numbers_validate_and_one_wrong_digit_does_not(make, validator):
    rng = random.Random(4)
    codes = [make(rng) for _ in range(300)]
    assert all(validator(c) for c in codes)
    # One changed digit breaks the check (the Steuer-ID may also break its repeated-digit rule).
    assert not any(validator(_flip_last_digit(c)) for c in codes)


def test_random_numbers_rarely_pass_so_a_numeric_column_needs_nearly_all_valid():
    rng = random.Random(9)
    numbers = [str(rng.randrange(10**8, 10**9)) for _ in range(5000)]
    share = sum(valid_nl_bsn(n) for n in numbers) / len(numbers)
    assert 0.05 < share < 0.12  # about one in eleven: below the 0.9 a numeric BSN column needs


def test_nino_generator_and_us_ssn_shapes():
    rng = random.Random(2)
    assert all(valid_uk_nino(nino(rng)) for _ in range(200))
    assert all(len(us_ssn(rng)) == 11 for _ in range(20))


@pytest.mark.slow
def test_recognizers_find_each_identifier_inside_text_and_ignore_invalid_ones():
    from compliance.analyzer import analyzer

    engine = analyzer()
    cases = {
        "DE_TAX_ID": ("Steuer-ID 86095742719 liegt vor", "Steuer-ID 86095742718 liegt vor"),
        "FR_NIR": ("NIR: 2 55 08 14 168 025 38", "NIR: 2 55 08 14 168 025 39"),
        "NL_BSN": ("BSN 111222333 bekend", "BSN 111222334 bekend"),
        "UK_NINO": ("NI AB 12 34 56 C on file", "NI AB 12 34 56 E on file"),
        "ES_NIF": ("DNI 12345678Z", "DNI 12345678A"),
        "IT_FISCAL_CODE": ("CF RSSMRA85T10A562S", "CF RSSMRA85T10A562T"),
        "IBAN_CODE": ("IBAN DE89 3704 0044 0532 0130 00", "IBAN DE88 3704 0044 0532 0130 00"),
    }
    for entity, (good, bad) in cases.items():
        assert entity in {r.entity_type for r in engine.analyze(good, language="en")}, good
        found_bad = {(r.entity_type, r.score) for r in engine.analyze(bad, language="en")}
        assert not any(e == entity and s >= 0.5 for e, s in found_bad), (bad, found_bad)
