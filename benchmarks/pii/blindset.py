"""A second, blind evaluation set for PII detection: written apart from :mod:`benchmarks.pii.evalset`.

Nothing is shared with that set or with the detectors: no Faker, no name lists from a
package, no column names from the first set. Values are composed from the small hand
lists below (Spanish and Italian first, then US, German and Dutch), identifiers with check
digits are computed here, and the column names follow other conventions: abbreviations
(``fnac``, ``ape1``, ``tlf``), camelCase (``dataNascita``, ``emailAddr``), numbered suffixes
(``contact_mail_2``), mixed-language headers in one table, and an export whose headers say
nothing (``c01`` ...). :func:`build` returns ``{table: {column: (values, label)}}``; label
None is a trap (no personal data).
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

ROWS = 80
Table = dict[str, tuple[list[str], str | None]]

# --- small hand lists -------------------------------------------------------------------
ES_FIRST = ["Alejandro", "Lucía", "Mateo", "Carmen", "Iñigo", "Nerea", "Álvaro", "Rocío", "Jordi", "Montserrat",
            "Xabier", "Begoña", "Rubén", "Pilar", "Sergio", "Ainhoa", "Gonzalo", "Maite", "Íker", "Remedios"]
ES_LAST = ["García", "Fernández", "Martínez", "Sánchez", "Gutiérrez", "Echeverría", "Olabarrieta", "Ruiz",
           "Jiménez", "Castellanos", "Vázquez", "Ibáñez", "Domínguez", "Quintana", "Llorente", "Arrieta"]
IT_FIRST = ["Giuseppe", "Chiara", "Lorenzo", "Francesca", "Matteo", "Giulia", "Salvatore", "Alessandra",
            "Gianluca", "Federica", "Vincenzo", "Ilaria", "Raffaele", "Martina", "Domenico", "Serena"]
IT_LAST = ["Esposito", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca",
           "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti", "Barbieri", "Fontana"]
US_FIRST = ["Tyrone", "Brittany", "Dwayne", "Kayla", "Cody", "Shanice", "Travis", "Destiny", "Brandon", "Latoya"]
US_LAST = ["Washington", "Kowalski", "Nguyen", "O'Connor", "Patel", "Hernandez", "Jefferson", "Schultz"]
DE_FIRST = ["Jürgen", "Anneliese", "Torsten", "Heike", "Dieter", "Gudrun", "Sven", "Birgit"]
DE_LAST = ["Schäfer", "Hoffmann", "Wagner", "Becker", "Zimmermann", "Krüger", "Weiß", "Schröder"]
NL_FIRST = ["Joost", "Femke", "Bram", "Sanne", "Maarten", "Anouk", "Ruud", "Lieke"]
NL_LAST = ["de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Mulder", "de Boer", "van Dijk"]

ES_CITIES = [("Madrid", "28"), ("Barcelona", "08"), ("Valencia", "46"), ("Sevilla", "41"), ("Bilbao", "48"),
             ("Zaragoza", "50"), ("Málaga", "29"), ("Valladolid", "47"), ("Donostia", "20"), ("Oviedo", "33")]
ES_STREETS = ["Calle Mayor", "Avenida de la Constitución", "Calle del Carmen", "Paseo de Gracia", "Calle Alcalá",
              "Plaza de España", "Ronda de Segovia", "Calle San Vicente Mártir", "Travesía del Olmo"]
IT_CITIES = [("Roma", "00", "RM", "H501"), ("Milano", "20", "MI", "F205"), ("Napoli", "80", "NA", "F839"),
             ("Torino", "10", "TO", "L219"), ("Bologna", "40", "BO", "A944"), ("Firenze", "50", "FI", "D612"),
             ("Palermo", "90", "PA", "G273"), ("Bari", "70", "BA", "A662"), ("Genova", "16", "GE", "D969")]
IT_STREETS = ["Via Roma", "Corso Vittorio Emanuele II", "Via Garibaldi", "Piazza del Popolo", "Viale dei Mille",
              "Via dei Condotti", "Vicolo Stretto", "Largo Argentina", "Via Nazionale"]
US_CITIES = [("Tulsa", "OK", "741"), ("Dayton", "OH", "454"), ("Boise", "ID", "837"), ("Fresno", "CA", "937"),
             ("Omaha", "NE", "681"), ("Raleigh", "NC", "276")]
US_STREETS = ["Maple Ave", "W 3rd St", "Lakeview Dr", "Old Mill Rd", "Sycamore Ln", "N Broadway", "Elm Ct"]
DE_STREETS = ["Lindenstraße", "Am Mühlbach", "Bahnhofstr.", "Goethestraße", "Kirchweg"]
NL_STREETS = ["Kerkstraat", "Dorpsweg", "Prinsengracht", "Molenlaan", "Stationsplein"]
DE_CITIES = ["Bielefeld", "Würzburg", "Rostock", "Kassel", "Freiburg im Breisgau"]
NL_CITIES = ["Utrecht", "Zwolle", "Haarlem", "Eindhoven", "Leeuwarden"]
DOMAINS = ["correo.es", "telefonica.net", "libero.it", "tiscali.it", "gmx.de", "ziggo.nl", "outlook.com", "yahoo.com"]
COMPANIES = ["Construcciones Ebro S.L.", "Ferretería Hermanos Ruiz S.A.", "Tessitura Lombarda S.p.A.",
             "Pastificio Gragnano S.r.l.", "Acme Logistics LLC", "Nordsee Fisch GmbH", "Van Houten B.V."]
PRODUCTS = ["Taladro percutor 800W", "Macchina espresso Dual", "Zapatillas trail Gore", "Borsa in pelle nera",
            "Router Wi-Fi 6 AX3000", "Lámpara LED regulable", "Set pentole inox 5 pz"]

ES_NOTES = ["Llamar a {n} por la tarde, prefiere el {p}", "Cliente {n} pide factura a {e}",
            "Entregar al portero, {n} vive en {s}", "Sin incidencias", "{n} reclama un reembolso"]
IT_NOTES = ["Richiamare {n} al numero {p}", "Spedire fattura a {e} per conto di {n}", "Nessuna nota",
            "Il sig. {n} abita in {s}, citofono rotto"]


def _strip(s: str) -> str:
    table = str.maketrans("áéíóúñçàèìòùäöüßÁÉÍÓÚÑÀÈÌÒÙÄÖÜŻż'", "aeiouncaeiouaousAEIOUNAEIOUAOUZz ")
    return s.translate(table).replace(" ", "").lower()


def _mail(rng: random.Random, first: str, last: str) -> str:
    f, last_ = _strip(first), _strip(last)
    style = rng.randrange(4)
    local = [f"{f}.{last_}", f"{f[0]}{last_}", f"{last_}_{f}{rng.randrange(10, 99)}", f"{f}{rng.randrange(1970, 2004)}"][style]
    return f"{local}@{rng.choice(DOMAINS)}"


def _birth(rng: random.Random) -> date:
    return date(1938, 1, 1) + timedelta(days=rng.randrange(0, 66 * 365))


# --- identifiers, computed here ------------------------------------------------------------
def dni(rng: random.Random) -> str:
    n = rng.randrange(1_000_000, 99_999_999)
    return f"{n:08d}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"


def nie(rng: random.Random) -> str:
    prefix = rng.randrange(3)
    n = rng.randrange(0, 9_999_999)
    return f"{'XYZ'[prefix]}{n:07d}{'TRWAGMYFPDXBNJZSQVHLCKE'[int(f'{prefix}{n:07d}') % 23]}"


def iban(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def iban_es(rng: random.Random) -> str:
    return iban("ES", "".join(str(rng.randrange(10)) for _ in range(20)))


def iban_it(rng: random.Random) -> str:
    account = "".join(rng.choice("0123456789") for _ in range(12))
    return iban("IT", rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + f"{rng.randrange(10**5):05d}{rng.randrange(10**5):05d}" + account)


def iban_de(rng: random.Random) -> str:
    return iban("DE", "".join(str(rng.randrange(10)) for _ in range(18)))


def iban_nl(rng: random.Random) -> str:
    return iban("NL", rng.choice(["ABNA", "RABO", "INGB", "TRIO"]) + "".join(str(rng.randrange(10)) for _ in range(10)))


_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12,
                 14, 16, 10, 22, 25, 24, 23], strict=True))


def _cf_part(word: str, is_name: bool) -> str:
    letters = [c for c in _strip(word).upper() if c.isalpha()]
    cons = [c for c in letters if c not in "AEIOU"]
    vow = [c for c in letters if c in "AEIOU"]
    if is_name and len(cons) >= 4:
        cons = [cons[0], cons[2], cons[3]]
    return "".join(cons + vow + ["X"] * 3)[:3]


def codice_fiscale(last: str, first: str, birth: date, female: bool, comune: str) -> str:
    body = (_cf_part(last, False) + _cf_part(first, True) + f"{birth.year % 100:02d}" + "ABCDEHLMPRST"[birth.month - 1]
            + f"{birth.day + (40 if female else 0):02d}" + comune)
    total = sum(_ODD[c] if i % 2 == 0 else (int(c) if c.isdigit() else ord(c) - 65) for i, c in enumerate(body))
    return body + chr(65 + total % 26)


def ssn(rng: random.Random) -> str:
    while True:
        area = rng.randrange(1, 900)
        if area != 666:
            return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


def steuer(rng: random.Random) -> str:
    while True:
        head = rng.sample(range(10), 9)
        head.insert(rng.randrange(1, 10), rng.choice(head))
        if head[0]:
            break
    product = 10
    for d in head:
        s = (d + product) % 10 or 10
        product = (2 * s) % 11
    return "".join(map(str, head)) + str((11 - product) % 10)


def bsn(rng: random.Random) -> str:
    while True:
        head = [rng.randrange(10) for _ in range(8)]
        rest = sum(d * w for d, w in zip(head, [9, 8, 7, 6, 5, 4, 3, 2], strict=True)) % 11
        if rest < 10 and head[0]:
            return "".join(map(str, head)) + str(rest)


# --- the tables ---------------------------------------------------------------------------
def _rows(fn, n: int = ROWS) -> list[dict[str, str]]:
    return [fn(i) for i in range(n)]


def _table(rows: list[dict[str, str]], labels: dict[str, str | None]) -> Table:
    return {col: ([r[col] for r in rows], label) for col, label in labels.items()}


def es_cli(rng: random.Random) -> Table:
    """Spanish customers: abbreviated headers, two surnames, DNI/NIE, IBAN, phone and mobile."""
    def row(i: int) -> dict[str, str]:
        first, a1, a2 = rng.choice(ES_FIRST), rng.choice(ES_LAST), rng.choice(ES_LAST)
        city, prov = rng.choice(ES_CITIES)
        b = _birth(rng)
        return {
            "id_cli": f"{1000 + i}", "nom": first, "ape1": a1, "ape2": a2,
            "nif": dni(rng) if rng.random() < 0.8 else nie(rng),
            "fnac": b.strftime("%d/%m/%Y"), "tlf": f"9{rng.randrange(10, 99)} {rng.randrange(100, 999)} {rng.randrange(100, 999)}",
            "movil": f"+34 6{rng.randrange(10, 99)} {rng.randrange(100, 999)} {rng.randrange(100, 999)}",
            "correo_e": _mail(rng, first, a1), "dir": f"{rng.choice(ES_STREETS)}, {rng.randrange(1, 180)}, {rng.randrange(1, 9)}º {rng.choice('ABCD')}",
            "cp": f"{prov}{rng.randrange(0, 999):03d}", "pob": city, "cta": iban_es(rng),
            "alta": (datetime(2019, 1, 1) + timedelta(minutes=rng.randrange(0, 2_000_000))).isoformat(sep=" "),
            "vip": rng.choice(["S", "N"]), "saldo": f"{rng.uniform(-500, 5000):.2f}", "obs": rng.choice(ES_NOTES).format(
                n=f"{first} {a1}", p=f"6{rng.randrange(10**7, 10**8)}", e=_mail(rng, first, a2), s=rng.choice(ES_STREETS)),
        }
    return _table(_rows(row), {
        "id_cli": None, "nom": "PERSON", "ape1": "PERSON", "ape2": "PERSON", "nif": "ES_NIF", "fnac": "DATE_OF_BIRTH",
        "tlf": "PHONE_NUMBER", "movil": "PHONE_NUMBER", "correo_e": "EMAIL_ADDRESS", "dir": "STREET_ADDRESS",
        "cp": "POSTCODE", "pob": "LOCATION", "cta": "IBAN_CODE", "alta": None, "vip": None, "saldo": None,
        "obs": "FREE_TEXT",
    })


def it_anag(rng: random.Random) -> Table:
    """Italian registry (anagrafica): camelCase headers, codice fiscale, place of birth."""
    def row(i: int) -> dict[str, str]:
        female = rng.random() < 0.5
        first, last = rng.choice(IT_FIRST), rng.choice(IT_LAST)
        city, cap, prov, comune = rng.choice(IT_CITIES)
        born_city, _c, _p, born_comune = rng.choice(IT_CITIES)
        b = _birth(rng)
        return {
            "codCliente": f"CL{i:05d}", "nomeCompleto": f"{first} {last}", "codFiscale": codice_fiscale(last, first, b, female, born_comune),
            "dataNascita": b.isoformat(), "luogoNascita": born_city, "indirizzoRes": f"{rng.choice(IT_STREETS)} {rng.randrange(1, 250)}",
            "capRes": f"{cap}{rng.randrange(100, 199)}", "comuneRes": city, "provRes": prov,
            "cellulare": f"+39 3{rng.randrange(20, 99)} {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}",
            "emailAddr": _mail(rng, first, last), "ibanAccredito": iban_it(rng),
            "livelloFedelta": rng.choice(["bronzo", "argento", "oro"]), "puntiSaldo": str(rng.randrange(0, 20000)),
            "ultimoOrdine": f"ORD-{2023 + i % 2}-{rng.randrange(1, 99999):05d}", "privacyOk": rng.choice(["true", "false"]),
            "annoFiscale": f"{rng.choice([2022, 2023, 2024])}/{rng.choice([23, 24, 25])}",
            "note": rng.choice(IT_NOTES).format(n=f"{first} {last}", p=f"3{rng.randrange(10**8, 10**9)}",
                                                e=_mail(rng, first, last), s=rng.choice(IT_STREETS)),
        }
    return _table(_rows(row), {
        "codCliente": None, "nomeCompleto": "PERSON", "codFiscale": "IT_FISCAL_CODE", "dataNascita": "DATE_OF_BIRTH",
        "luogoNascita": "LOCATION", "indirizzoRes": "STREET_ADDRESS", "capRes": "POSTCODE", "comuneRes": "LOCATION",
        "provRes": None, "cellulare": "PHONE_NUMBER", "emailAddr": "EMAIL_ADDRESS", "ibanAccredito": "IBAN_CODE",
        "livelloFedelta": None, "puntiSaldo": None, "ultimoOrdine": None, "privacyOk": None, "annoFiscale": None,
        "note": "FREE_TEXT",
    })


def es_it_rrhh(rng: random.Random) -> Table:
    """A staff table with mixed Spanish/Italian/English headers, numbered contacts, payroll data."""
    def row(i: int) -> dict[str, str]:
        es = rng.random() < 0.5
        first = rng.choice(ES_FIRST if es else IT_FIRST)
        last = rng.choice(ES_LAST if es else IT_LAST)
        b = _birth(rng)
        return {
            "emp_no": str(20000 + i), "nombre_dipendente": f"{last}, {first}", "contact_mail_1": _mail(rng, first, last),
            "contact_mail_2": _mail(rng, first, rng.choice(ES_LAST + IT_LAST)),
            "tel_1": f"+34 9{rng.randrange(10, 99)} {rng.randrange(100000, 999999)}" if es else f"+39 0{rng.randrange(10, 99)} {rng.randrange(100000, 9999999)}",
            "nacimiento_data": b.strftime("%Y%m%d"), "ciudad_nascita": rng.choice(ES_CITIES)[0] if es else rng.choice(IT_CITIES)[0],
            "banco_iban": iban_es(rng) if es else iban_it(rng), "dept": rng.choice(["IT", "Finanza", "Ventas", "Logística", "HR"]),
            "grade_lvl": f"L{rng.randrange(1, 8)}", "salario_bruto": str(rng.randrange(22000, 95000)),
            "fecha_ingreso": (date(2005, 1, 1) + timedelta(days=rng.randrange(0, 7000))).isoformat(),
            "sw_version": f"{rng.randrange(1, 5)}.{rng.randrange(0, 20)}.{rng.randrange(0, 40)}.{rng.randrange(0, 999)}",
            "laptop_ip": f"10.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}",
            "manager_ref": f"EMP-{rng.randrange(20000, 20080)}", "remoto": rng.choice(["sí", "no"]),
        }
    return _table(_rows(row), {
        "emp_no": None, "nombre_dipendente": "PERSON", "contact_mail_1": "EMAIL_ADDRESS", "contact_mail_2": "EMAIL_ADDRESS",
        "tel_1": "PHONE_NUMBER", "nacimiento_data": "DATE_OF_BIRTH", "ciudad_nascita": "LOCATION", "banco_iban": "IBAN_CODE",
        "dept": None, "grade_lvl": None, "salario_bruto": None, "fecha_ingreso": None, "sw_version": None,
        "laptop_ip": "IP_ADDRESS", "manager_ref": None, "remoto": None,
    })


def us_crm(rng: random.Random) -> Table:
    """A US CRM export in camelCase: a contact's SSN, address, web session data and traps."""
    def row(i: int) -> dict[str, str]:
        first, last = rng.choice(US_FIRST), rng.choice(US_LAST)
        city, state, zip3 = rng.choice(US_CITIES)
        return {
            "leadId": f"{rng.randrange(16**8, 16**9):x}", "firstNm": first, "lastNm": last, "ssnFull": ssn(rng),
            "homeAddr1": f"{rng.randrange(10, 9999)} {rng.choice(US_STREETS)}", "homeCity": city, "homeSt": state,
            "zip5": f"{zip3}{rng.randrange(0, 99):02d}", "cellNo": f"({rng.randrange(201, 989)}) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}",
            "workEmail": _mail(rng, first, last), "lastLoginIp": f"{rng.randrange(11, 223)}.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}",
            "dob": f"{rng.randrange(1, 13)}/{rng.randrange(1, 29)}/{rng.randrange(1945, 2003)}",
            "employer": rng.choice(COMPANIES), "productInterest": rng.choice(PRODUCTS),
            "dealStage": rng.choice(["prospect", "qualified", "won", "lost"]), "dealAmt": f"{rng.randrange(100, 90000)}.00",
            "fy": f"FY{rng.choice([23, 24, 25])}", "optIn": rng.choice(["Y", "N"]),
            "appBuild": f"{rng.randrange(1, 9)}.{rng.randrange(0, 9)}.{rng.randrange(0, 99)}.{rng.randrange(1000, 9999)}",
        }
    return _table(_rows(row), {
        "leadId": None, "firstNm": "PERSON", "lastNm": "PERSON", "ssnFull": "US_SSN", "homeAddr1": "STREET_ADDRESS",
        "homeCity": "LOCATION", "homeSt": None, "zip5": "POSTCODE", "cellNo": "PHONE_NUMBER", "workEmail": "EMAIL_ADDRESS",
        "lastLoginIp": "IP_ADDRESS", "dob": "DATE_OF_BIRTH", "employer": None, "productInterest": None, "dealStage": None,
        "dealAmt": None, "fy": None, "optIn": None, "appBuild": None,
    })


def de_nl_kunden(rng: random.Random) -> Table:
    """German and Dutch customers in one table: German/Dutch headers with numbered suffixes."""
    def row(i: int) -> dict[str, str]:
        de = rng.random() < 0.5
        first = rng.choice(DE_FIRST if de else NL_FIRST)
        last = rng.choice(DE_LAST if de else NL_LAST)
        return {
            "kdnr": f"K-{i:06d}", "vorname_1": first, "achternaam_1": last,
            "strasse_nr": f"{rng.choice(DE_STREETS)} {rng.randrange(1, 120)}" if de else f"{rng.choice(NL_STREETS)} {rng.randrange(1, 300)}",
            "plz_postcode": f"{rng.randrange(10000, 99999)}" if de else f"{rng.randrange(1000, 9999)} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}",
            "woonplaats_ort": rng.choice(DE_CITIES if de else NL_CITIES),
            "telefoon_2": f"+49 {rng.randrange(30, 999)} {rng.randrange(100000, 9999999)}" if de else f"+31 6 {rng.randrange(10000000, 99999999)}",
            "mail_adres": _mail(rng, first, last), "rekening_konto": iban_de(rng) if de else iban_nl(rng),
            "st_idnr": steuer(rng), "sofi_nr": bsn(rng),
            "geb_dat": _birth(rng).strftime("%d.%m.%Y" if de else "%d-%m-%Y"),
            "artikel_nr": f"ART{rng.randrange(100000, 999999)}", "menge": str(rng.randrange(1, 40)),
            "bestelldatum": (date(2024, 1, 1) + timedelta(days=rng.randrange(0, 500))).isoformat(),
            "lieferant": rng.choice(COMPANIES), "nieuwsbrief": rng.choice(["ja", "nein", "nee"]),
        }
    return _table(_rows(row), {
        "kdnr": None, "vorname_1": "PERSON", "achternaam_1": "PERSON", "strasse_nr": "STREET_ADDRESS",
        "plz_postcode": "POSTCODE", "woonplaats_ort": "LOCATION", "telefoon_2": "PHONE_NUMBER", "mail_adres": "EMAIL_ADDRESS",
        "rekening_konto": "IBAN_CODE", "st_idnr": "DE_TAX_ID", "sofi_nr": "NL_BSN", "geb_dat": "DATE_OF_BIRTH", "artikel_nr": None,
        "menge": None, "bestelldatum": None, "lieferant": None, "nieuwsbrief": None,
    })


def export_c(rng: random.Random) -> Table:
    """An export whose headers say nothing (``c01`` ...): only the values can tell."""
    def row(i: int) -> dict[str, str]:
        first, last = rng.choice(IT_FIRST + ES_FIRST), rng.choice(IT_LAST + ES_LAST)
        return {
            "c01": str(i + 1), "c02": _mail(rng, first, last), "c03": iban_es(rng) if i % 2 else iban_it(rng),
            "c04": f"+34 6{rng.randrange(10**7, 10**8)}" if i % 2 else f"+39 3{rng.randrange(10**8, 10**9)}",
            "c05": f"{rng.choice(IT_STREETS)} {rng.randrange(1, 99)}" if i % 2 else f"{rng.choice(ES_STREETS)}, {rng.randrange(1, 99)}",
            "c06": f"https://tienda.example.es/u?mail={_mail(rng, first, last)}",
            "c07": rng.choice(PRODUCTS), "c08": f"{rng.randrange(0, 100)}%", "c09": rng.choice(["EUR", "USD", "GBP"]),
            "c10": (datetime(2024, 5, 1) + timedelta(seconds=rng.randrange(0, 10**7))).isoformat() + "Z",
            "c11": f"{rng.randrange(1, 4)}.{rng.randrange(0, 12)}.{rng.randrange(0, 30)}",
            "c12": rng.choice(COMPANIES),
        }
    return _table(_rows(row), {
        "c01": None, "c02": "EMAIL_ADDRESS", "c03": "IBAN_CODE", "c04": "PHONE_NUMBER", "c05": "STREET_ADDRESS",
        "c06": "URL", "c07": None, "c08": None, "c09": None, "c10": None, "c11": None, "c12": None,
    })


TABLES = {"es_cli": es_cli, "it_anag": it_anag, "es_it_rrhh": es_it_rrhh, "us_crm": us_crm,
          "de_nl_kunden": de_nl_kunden, "export_c": export_c}
LOCALES = ("es", "it", "en-US", "de", "nl")


def build(seed: int = 1517) -> dict[str, Table]:
    rng = random.Random(seed)
    return {name: fn(rng) for name, fn in TABLES.items()}
