"""A labelled multi-locale evaluation set for PII detection, generated here (seeded), not by the demo.

:func:`build` returns tables of ``{column: (values, label)}``: eight tables in seven
locales (de, fr, nl, en-GB, en-US, es, it, plus an export whose column names say
nothing), with person data, national identifiers, bank and contact data, and traps
(``label`` None): ids, amounts, versions, booleans, companies, products, user
agents, fiscal years, timestamps. Values come from Faker's locale providers and from
the generators below, which compute check digits on their own (they do not call the
recognizers they are used to measure). Free-text columns are labelled ``FREE_TEXT``.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import date, datetime, timedelta

from faker import Faker

ROWS = 150
Table = dict[str, tuple[list[str], str | None]]


# --- identifiers with check digits (independent implementations) --------------------
def steuer_id(rng: random.Random) -> str:
    """German Steuer-ID: ten digits, one of them twice, then the ISO 7064 MOD 11,10 check digit."""
    while True:
        digits = rng.sample(range(10), 9)
        digits.insert(rng.randrange(1, 10), rng.choice(digits))
        if digits[0] == 0:
            continue
        product = 10
        for d in digits:
            s = (d + product) % 10 or 10
            product = (2 * s) % 11
        check = (11 - product) % 10
        return "".join(map(str, digits)) + str(check)


def nir(rng: random.Random, birth: date) -> str:
    body = f"{rng.choice('12')}{birth.year % 100:02d}{birth.month:02d}{rng.randrange(1, 96):02d}{rng.randrange(1, 990):03d}"
    body += f"{rng.randrange(1, 999):03d}"
    return f"{body}{97 - int(body) % 97:02d}"


def bsn(rng: random.Random) -> str:
    while True:
        head = [rng.randrange(10) for _ in range(8)]
        last = sum(d * w for d, w in zip(head, range(9, 1, -1), strict=True)) % 11
        if last < 10 and any(head):
            return "".join(map(str, head)) + str(last)


def nino(rng: random.Random) -> str:
    first = rng.choice([c for c in string.ascii_uppercase if c not in "DFIQUV"])
    while True:
        second = rng.choice([c for c in string.ascii_uppercase if c not in "DFIQUVO"])
        if first + second not in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
            break
    nums = f"{rng.randrange(10**6):06d}"
    return f"{first}{second} {nums[:2]} {nums[2:4]} {nums[4:]} {rng.choice('ABCD')}"


def us_ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


def fmt_date(d: date, style: str) -> str:
    return {"iso": d.isoformat(), "de": d.strftime("%d.%m.%Y"), "fr": d.strftime("%d/%m/%Y"),
            "us": d.strftime("%m/%d/%Y"), "es": d.strftime("%d-%m-%Y")}[style]


def version(rng: random.Random) -> str:
    return f"{rng.randrange(0, 12)}.{rng.randrange(0, 30)}.{rng.randrange(0, 20)}.{rng.randrange(0, 99)}"


def free_text(fake: Faker, rng: random.Random, phrases: list[str]) -> str:
    """A note: mostly plain sentences, some with a name, e-mail or phone of the locale."""
    kind = rng.random()
    base = rng.choice(phrases)
    if kind < 0.15:
        return f"{base} {fake.first_name()} {fake.last_name()}."
    if kind < 0.25:
        return f"{base} {fake.email()}"
    if kind < 0.35:
        return f"{base} {fake.phone_number()}"
    return f"{base} {fake.sentence(nb_words=6)}"


def _col(n: int, fn: Callable[[int], str]) -> list[str]:
    return [fn(i) for i in range(n)]


def _births(rng: random.Random, n: int) -> list[date]:
    return [date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 65)) for _ in range(n)]


def build(seed: int = 20261203, rows: int = ROWS) -> dict[str, Table]:
    """The evaluation tables, the same for the same seed."""
    rng = random.Random(seed)

    def faker(locale: str) -> Faker:
        f = Faker(locale)
        f.seed_instance(rng.randrange(10**9))
        return f

    n = rows
    tables: dict[str, Table] = {}

    de = faker("de_DE")
    births = _births(rng, n)
    tables["de_kunden"] = {
        "kunden_nr": (_col(n, lambda i: f"K-{100000 + i * 37}"), None),
        "vorname": (_col(n, lambda i: de.first_name()), "PERSON"),
        "nachname": (_col(n, lambda i: de.last_name()), "PERSON"),
        "geburtsdatum": ([fmt_date(b, "de") for b in births], "DATE_OF_BIRTH"),
        "geburtsort": (_col(n, lambda i: de.city()), "LOCATION"),
        "strasse": (_col(n, lambda i: de.street_address()), "STREET_ADDRESS"),
        "plz": (_col(n, lambda i: de.postcode()), "POSTCODE"),
        "ort": (_col(n, lambda i: de.city()), "LOCATION"),
        "telefon": (_col(n, lambda i: de.phone_number()), "PHONE_NUMBER"),
        "e_mail": (_col(n, lambda i: de.email()), "EMAIL_ADDRESS"),
        "steuer_id": (_col(n, lambda i: steuer_id(rng)), "DE_TAX_ID"),
        "bankverbindung": (_col(n, lambda i: de.iban()), "IBAN_CODE"),
        "kontoinhaber": (_col(n, lambda i: de.name()), "PERSON"),
        "newsletter_einwilligung": (_col(n, lambda i: rng.choice(["ja", "nein"])), None),
        "firma": (_col(n, lambda i: de.company()), None),
        "umsatz_eur": (_col(n, lambda i: f"{rng.uniform(5, 5000):.2f}"), None),
        "kunde_seit": (_col(n, lambda i: (date(2015, 1, 1) + timedelta(days=rng.randrange(3600))).isoformat()), None),
        "bemerkung": (_col(n, lambda i: free_text(de, rng, ["Bitte vor der Lieferung anrufen.", "Paket beim Nachbarn abgeben.",
                                                             "Rechnung an die Firma senden.", "Kunde wünscht Rückruf von"])),
                      "FREE_TEXT"),
    }

    fr = faker("fr_FR")
    births = _births(rng, n)
    tables["fr_clients"] = {
        "id_client": (_col(n, lambda i: str(500000 + i * 13)), None),
        "prenom": (_col(n, lambda i: fr.first_name()), "PERSON"),
        "nom": (_col(n, lambda i: fr.last_name()), "PERSON"),
        "date_naissance": ([fmt_date(b, "fr") for b in births], "DATE_OF_BIRTH"),
        "lieu_naissance": (_col(n, lambda i: fr.city()), "LOCATION"),
        "adresse": (_col(n, lambda i: fr.street_address()), "STREET_ADDRESS"),
        "code_postal": (_col(n, lambda i: fr.postcode()), "POSTCODE"),
        "ville": (_col(n, lambda i: fr.city()), "LOCATION"),
        "telephone": (_col(n, lambda i: fr.phone_number()), "PHONE_NUMBER"),
        "courriel": (_col(n, lambda i: fr.email()), "EMAIL_ADDRESS"),
        "numero_securite_sociale": ([nir(rng, b) for b in births], "FR_NIR"),
        "iban": (_col(n, lambda i: fr.iban()), "IBAN_CODE"),
        "titulaire": (_col(n, lambda i: fr.name()), "PERSON"),
        "societe": (_col(n, lambda i: fr.company()), None),
        "version_appli": (_col(n, lambda i: version(rng)), None),
        "exercice": (_col(n, lambda i: str(rng.randrange(2010, 2026))), None),
        "montant_ttc": (_col(n, lambda i: f"{rng.uniform(1, 900):.2f}".replace(".", ",")), None),
        "commentaire": (_col(n, lambda i: free_text(fr, rng, ["Livrer après 18h.", "Client fidèle depuis longtemps.",
                                                               "Merci de rappeler", "Colis fragile, manipuler avec soin."])),
                        "FREE_TEXT"),
    }

    nl = faker("nl_NL")
    births = _births(rng, n)
    tables["nl_klanten"] = {
        "klantnummer": (_col(n, lambda i: str(1000 + i)), None),
        "voornaam": (_col(n, lambda i: nl.first_name()), "PERSON"),
        "achternaam": (_col(n, lambda i: nl.last_name()), "PERSON"),
        "geboortedatum": ([fmt_date(b, "es") for b in births], "DATE_OF_BIRTH"),
        "adres": (_col(n, lambda i: nl.street_address()), "STREET_ADDRESS"),
        "postcode": (_col(n, lambda i: nl.postcode()), "POSTCODE"),
        "woonplaats": (_col(n, lambda i: nl.city()), "LOCATION"),
        "telefoonnummer": (_col(n, lambda i: nl.phone_number()), "PHONE_NUMBER"),
        "emailadres": (_col(n, lambda i: nl.email()), "EMAIL_ADDRESS"),
        "bsn": (_col(n, lambda i: bsn(rng)), "NL_BSN"),
        "rekeningnummer": (_col(n, lambda i: nl.iban()), "IBAN_CODE"),
        "email_opt_in": (_col(n, lambda i: rng.choice(["true", "false"])), None),
        "bedrijf": (_col(n, lambda i: nl.company()), None),
        "ordernummer": (_col(n, lambda i: f"ORD-{2024 + i % 2}-{i:06d}"), None),
        "boekjaar": (_col(n, lambda i: f"{2015 + i % 10}/{16 + i % 10}"), None),
        "opmerking": (_col(n, lambda i: free_text(nl, rng, ["Graag bellen voor levering.", "Pakket bij de buren afgeven.",
                                                             "Factuur naar kantoor sturen.", "Klant vraagt om contact met"])),
                      "FREE_TEXT"),
    }

    gb = faker("en_GB")
    births = _births(rng, n)
    tables["uk_customers"] = {
        "customer_ref": (_col(n, lambda i: f"C{i:07d}"), None),
        "full_name": (_col(n, lambda i: gb.name()), "PERSON"),
        "dob": ([fmt_date(b, "iso") for b in births], "DATE_OF_BIRTH"),
        "address_line1": (_col(n, lambda i: gb.street_address()), "STREET_ADDRESS"),
        "postcode": (_col(n, lambda i: gb.postcode()), "POSTCODE"),
        "town": (_col(n, lambda i: gb.city()), "LOCATION"),
        "mobile": (_col(n, lambda i: gb.phone_number()), "PHONE_NUMBER"),
        "email": (_col(n, lambda i: gb.email()), "EMAIL_ADDRESS"),
        "ni_number": (_col(n, lambda i: nino(rng)), "UK_NINO"),
        "iban": (_col(n, lambda i: gb.iban()), "IBAN_CODE"),
        "employer": (_col(n, lambda i: gb.company()), None),
        "user_agent": (_col(n, lambda i: gb.user_agent()), None),
        "referrer": (_col(n, lambda i: f"{gb.uri()}?utm_source=mail&ref={gb.user_name()}"), "URL"),
        "x_forwarded_for": (_col(n, lambda i: ", ".join(gb.ipv4_public() for _ in range(rng.randrange(1, 4)))),
                            "IP_ADDRESS"),
        "fiscal_year": (_col(n, lambda i: f"FY{2015 + i % 10}/{16 + i % 10}"), None),
        "order_total_gbp": (_col(n, lambda i: f"{rng.uniform(3, 700):.2f}"), None),
        "created_at": (_col(n, lambda i: f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"), None),
        "notes": (_col(n, lambda i: free_text(gb, rng, ["Leave parcel with neighbour.", "Prefers morning delivery.",
                                                         "Please call before arrival", "Account reviewed by"])),
                  "FREE_TEXT"),
    }

    us = faker("en_US")
    births = _births(rng, n)
    tables["us_users"] = {
        "user_id": (_col(n, lambda i: us.uuid4()), None),
        "name": (_col(n, lambda i: us.name()), "PERSON"),
        "ssn": (_col(n, lambda i: us_ssn(rng)), "US_SSN"),
        "birthdate": ([fmt_date(b, "us") for b in births], "DATE_OF_BIRTH"),
        "street": (_col(n, lambda i: us.street_address()), "STREET_ADDRESS"),
        "city": (_col(n, lambda i: us.city()), "LOCATION"),
        "zip": (_col(n, lambda i: us.zipcode()), "POSTCODE"),
        "phone": (_col(n, lambda i: us.phone_number()), "PHONE_NUMBER"),
        "email": (_col(n, lambda i: us.email()), "EMAIL_ADDRESS"),
        "last_login_ip": (_col(n, lambda i: us.ipv4()), "IP_ADDRESS"),
        "unsubscribe_link": (_col(n, lambda i: f"https://news.{us.domain_name()}/unsubscribe?email="
                                                f"{us.email().replace('@', '%40')}&list={i % 7}"), "EMAIL_ADDRESS"),
        "email_opt_in": (_col(n, lambda i: rng.choice(["true", "false", "TRUE", "FALSE"])), None),
        "app_version": (_col(n, lambda i: version(rng)), None),
        "plan": (_col(n, lambda i: rng.choice(["free", "pro", "team", "enterprise"])), None),
        "product_name": (_col(n, lambda i: f"{us.color_name()} {us.word().title()} {rng.choice(['Mug', 'Lamp', 'Chair'])}"),
                         None),
        "company": (_col(n, lambda i: us.company()), None),
        "user_agent": (_col(n, lambda i: us.user_agent()), None),
        "signup_ts": (_col(n, lambda i: us.date_time_between(datetime(2022, 1, 1), datetime(2025, 6, 30)).isoformat(sep=" ")), None),
    }

    es = faker("es_ES")
    births = _births(rng, n)
    tables["es_clientes"] = {
        "pedido": (_col(n, lambda i: f"P{2023 + i % 3}{i:05d}"), None),
        "nombre": (_col(n, lambda i: es.first_name()), "PERSON"),
        "apellidos": (_col(n, lambda i: f"{es.last_name()} {es.last_name()}"), "PERSON"),
        "dni": (_col(n, lambda i: es.nif() if i % 4 else es.nie()), "ES_NIF"),
        "fecha_nacimiento": ([fmt_date(b, "iso") for b in births], "DATE_OF_BIRTH"),
        "direccion": (_col(n, lambda i: es.street_address()), "STREET_ADDRESS"),
        "codigo_postal": (_col(n, lambda i: es.postcode()), "POSTCODE"),
        "ciudad": (_col(n, lambda i: es.city()), "LOCATION"),
        "telefono": (_col(n, lambda i: es.phone_number()), "PHONE_NUMBER"),
        "correo": (_col(n, lambda i: es.email()), "EMAIL_ADDRESS"),
        "iban": (_col(n, lambda i: es.iban()), "IBAN_CODE"),
        "empresa": (_col(n, lambda i: es.company()), None),
        "importe": (_col(n, lambda i: f"{rng.uniform(1, 300):.2f}"), None),
        "estado": (_col(n, lambda i: rng.choice(["pendiente", "enviado", "entregado", "devuelto"])), None),
        "notas": (_col(n, lambda i: free_text(es, rng, ["Entregar por la tarde.", "Dejar el paquete en portería.",
                                                         "Llamar antes de llegar", "Cliente habitual, trato preferente."])),
                  "FREE_TEXT"),
    }

    it = faker("it_IT")
    births = _births(rng, n)
    tables["it_clienti"] = {
        "codice_cliente": (_col(n, lambda i: f"CL{i:06d}"), None),
        "nome": (_col(n, lambda i: it.first_name()), "PERSON"),
        "cognome": (_col(n, lambda i: it.last_name()), "PERSON"),
        "codice_fiscale": (_col(n, lambda i: it.ssn()), "IT_FISCAL_CODE"),
        "data_nascita": ([fmt_date(b, "fr") for b in births], "DATE_OF_BIRTH"),
        "luogo_nascita": (_col(n, lambda i: it.city()), "LOCATION"),
        "indirizzo": (_col(n, lambda i: it.street_address()), "STREET_ADDRESS"),
        "cap": (_col(n, lambda i: it.postcode()), "POSTCODE"),
        "citta": (_col(n, lambda i: it.city()), "LOCATION"),
        "cellulare": (_col(n, lambda i: it.phone_number()), "PHONE_NUMBER"),
        "email": (_col(n, lambda i: it.email()), "EMAIL_ADDRESS"),
        "iban": (_col(n, lambda i: it.iban()), "IBAN_CODE"),
        "azienda": (_col(n, lambda i: it.company()), None),
        "anno_fiscale": (_col(n, lambda i: str(2000 + i % 25)), None),
        "sconto_percentuale": (_col(n, lambda i: f"{rng.randrange(0, 50)}%"), None),
    }

    # Column names that say nothing: the values have to speak.
    mix = [faker(loc) for loc in ("de_DE", "fr_FR", "nl_NL", "en_GB", "en_US", "es_ES", "it_IT")]
    pick = lambda fn: _col(n, lambda i: fn(mix[i % len(mix)]))  # noqa: E731
    tables["export_misc"] = {
        "field_01": (pick(lambda f: f.email()), "EMAIL_ADDRESS"),
        "field_02": (pick(lambda f: f.iban()), "IBAN_CODE"),
        "field_03": (_col(n, lambda i: bsn(rng)), "NL_BSN"),
        "field_04": (_col(n, lambda i: steuer_id(rng)), "DE_TAX_ID"),
        "field_05": (pick(lambda f: f.name()), "PERSON"),
        "field_06": (_col(n, lambda i: " ".join(_chunks(mix[1].ssn(), (1, 2, 2, 2, 3, 3, 2)))), "FR_NIR"),
        "field_07": (pick(lambda f: f.ipv4_public()), "IP_ADDRESS"),
        "field_08": (pick(lambda f: f.ipv6()), "IP_ADDRESS"),
        "field_09": (_col(n, lambda i: version(rng)), None),
        "field_10": (_col(n, lambda i: rng.choice(["0", "1"])), None),
        "field_11": (pick(lambda f: f.uuid4()), None),
        "field_12": (pick(lambda f: f.sha256()[:16]), None),
        "field_13": (pick(lambda f: f.currency_code()), None),
        "field_14": (pick(lambda f: f.country_code()), None),
        "field_15": (_col(n, lambda i: f"SKU-{rng.randrange(10**5):05d}-{rng.choice('ABCDEFG')}"), None),
        "field_16": (_col(n, lambda i: str(10**9 + i * 7919)), None),
        "field_17": (pick(lambda f: f.credit_card_number()), "CREDIT_CARD"),
        "field_18": (_col(n, lambda i: us_ssn(rng)), "US_SSN"),
        "field_19": (pick(lambda f: f.color_name()), None),
        "field_20": (_col(n, lambda i: f"{rng.uniform(-90, 90):.5f}"), None),
    }
    return tables


def _chunks(text: str, sizes: tuple[int, ...]) -> list[str]:
    out, pos = [], 0
    for size in sizes:
        out.append(text[pos : pos + size])
        pos += size
    return out
