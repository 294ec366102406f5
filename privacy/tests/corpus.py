"""An adversarial corpus for data-subject requests, and its oracle (plain Python over the same rows).

Customers, their orders and a Chart profile table with the e-mail hashed, where
many values in key columns identify nobody or more than one person:

* shared placeholders (``<EMAIL_ADDRESS>``, ``[REDACTED]``, ``***1234``) and masked phones;
* families sharing one e-mail address, and a switchboard number shared by eight customers;
* NULLs, empty strings, ``N/A``, ``unknown``, ``none`` in key columns;
* hashes of common values: the profile token of a customer without a usable e-mail is
  the pseudonym of ``''`` / ``n/a``, shared by all of them;
* identifiers inside longer text: free-text notes quoting the customer's own e-mail,
  another customer's e-mail ("referred by ..."), or an anonymised placeholder.

Every generated row knows its owner (the customer it is about). The oracle never
matches values: the rows of a subject are the rows it owns, full stop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from compliance.policies import pseudonym

PLACEHOLDER_EMAILS = ["<EMAIL_ADDRESS>", "[REDACTED]", "{masked}"]
EMPTY_VALUES = [None, "", "  ", "N/A", "unknown", "none", "-"]
MASKED_PHONES = ["***1234", "*******0000", "XXXX-5678", "####"]
FIRST = ["ann", "bob", "cy", "dee", "eli", "fay", "gus", "hal", "ida", "jo", "kim", "lou", "max", "ned", "ola", "pia"]
SWITCHBOARD = "+44 20 7946 9999"
DOMAINS = ["example.com", "mail.example.org", "shop.example.net"]


@dataclass
class Corpus:
    customers: list[dict] = field(default_factory=list)  # customer_id, email, phone, notes, owner
    orders: list[dict] = field(default_factory=list)  # order_id, customer_id, amount, owner
    profiles: list[dict] = field(default_factory=list)  # customer_id, email_token, owner
    unique_email: dict[int, str] = field(default_factory=dict)  # customer -> their own, unshared address
    unique_phone: dict[int, str] = field(default_factory=dict)
    families: list[tuple[str, list[int]]] = field(default_factory=list)  # shared address, its customers
    referred: dict[int, int] = field(default_factory=dict)
    switchboard: list[int] = field(default_factory=list)  # customers sharing one phone number  # customer whose address another's note quotes -> that other

    def rows_of(self, owners: set[int]) -> dict[str, set]:
        """The oracle: every row owned by ``owners``, per table, by its row identity."""
        return {
            "customers": {(c["customer_id"], c["row"]) for c in self.customers if c["owner"] in owners},
            "orders": {o["order_id"] for o in self.orders if o["owner"] in owners},
            "profiles": {p["customer_id"] for p in self.profiles if p["owner"] in owners},
        }

    def all_rows(self) -> dict[str, set]:
        return self.rows_of({c["owner"] for c in self.customers})


def _dirty(rng: random.Random, email: str) -> str:
    """As shops send addresses: random case, stray spaces."""
    if rng.random() < 0.3:
        email = email.upper() if rng.random() < 0.5 else email.title()
    if rng.random() < 0.3:
        email = f"  {email} "
    return email


def generate(seed: int, customers: int = 60) -> Corpus:
    rng = random.Random(seed)
    corpus = Corpus()
    ids = list(range(1, customers + 1))
    rng.shuffle(ids)
    # Roles: families of 2-3 sharing an address, customers without a usable address, the rest unique.
    families, cursor = [], 0
    for _ in range(customers // 12):
        size = rng.choice([2, 3])
        families.append(ids[cursor:cursor + size])
        cursor += size
    no_email = ids[cursor:cursor + customers // 5]
    cursor += len(no_email)
    unique = ids[cursor:]
    email_of: dict[int, str | None] = {}
    for n, members in enumerate(families):
        address = f"family{n}.{rng.choice(FIRST)}@{rng.choice(DOMAINS)}"
        corpus.families.append((address, sorted(members)))
        for c in members:
            email_of[c] = address
    for c in no_email:
        email_of[c] = rng.choice(PLACEHOLDER_EMAILS + EMPTY_VALUES)
    for c in unique:
        email_of[c] = f"{rng.choice(FIRST)}.{c}{rng.choice(['', '.x', '_1'])}@{rng.choice(DOMAINS)}"
        corpus.unique_email[c] = email_of[c]
    # A switchboard number shared by more customers than ATLAS_DSR_SHARED_VALUE_SUBJECTS (default 5).
    corpus.switchboard = sorted(rng.sample(unique, 8))
    row = 0
    for c in sorted(ids):
        phone = rng.choice(MASKED_PHONES + EMPTY_VALUES) if rng.random() < 0.35 else f"+44 20 7946 {c:04d}"
        if c in corpus.switchboard:
            phone = SWITCHBOARD
        if phone and phone.startswith("+44") and phone != SWITCHBOARD:
            corpus.unique_phone[c] = phone
        versions = 2 if rng.random() < 0.25 else 1  # Explore keeps every version received
        for _ in range(versions):
            row += 1
            email = email_of[c]
            corpus.customers.append({
                "row": row, "customer_id": str(c), "email": _dirty(rng, email) if email and "@" in email else email,
                "phone": phone, "notes": None, "owner": c,
            })
        token_source = (email_of[c] or "").strip().lower()
        if token_source not in {e.lower() for e in corpus.unique_email.values()} and "@" not in token_source:
            token_source = rng.choice(["", "n/a"])  # the pseudonym of a common value, shared by many
        corpus.profiles.append({"customer_id": c, "email_token": pseudonym(token_source), "owner": c})
        for _ in range(rng.randint(0, 4)):
            corpus.orders.append({"order_id": len(corpus.orders) + 1000, "customer_id": str(c),
                                  "amount": f"{rng.randint(100, 99999) / 100:.2f}", "owner": c})
    # Notes: own address inside text, someone else's address inside text, placeholders.
    uniques = sorted(corpus.unique_email)
    for rec in corpus.customers:
        c, roll = rec["owner"], rng.random()
        if roll < 0.2 and c in corpus.unique_email:
            rec["notes"] = f"Contact {corpus.unique_email[c].strip()} only, after 6pm"
        elif roll < 0.35:
            rec["notes"] = "Contact via <EMAIL_ADDRESS> only"
        elif roll < 0.45:
            other = rng.choice([u for u in uniques if u != c])
            rec["notes"] = f"Referred by {corpus.unique_email[other].upper()} last spring"
            corpus.referred.setdefault(other, c)
        elif roll < 0.6:
            rec["notes"] = rng.choice(["", "N/A", None])
    return corpus


CUSTOMERS_DDL = "customer_id text, email text, phone text, notes text, _row text"
ORDERS_DDL = "order_id text, customer_id text, amount text"
PROFILES_DDL = "customer_id bigint, email_token text"


def load(wh, corpus: Corpus, prefix: str = "crm") -> dict[str, str]:
    """Write the corpus to explore.<prefix>_customers / _orders and chart.<prefix>_profiles."""
    tables = {"customers": f"explore.{prefix}_customers", "orders": f"explore.{prefix}_orders",
              "profiles": f"chart.{prefix}_profiles"}
    with wh.transaction() as cur:
        for name, ddl in [("customers", CUSTOMERS_DDL), ("orders", ORDERS_DDL), ("profiles", PROFILES_DDL)]:
            cur.execute(f"DROP TABLE IF EXISTS {tables[name]}")
            cur.execute(f"CREATE TABLE {tables[name]} ({ddl})")
        cur.executemany(
            f"INSERT INTO {tables['customers']} (customer_id, email, phone, notes, _row) VALUES (%s, %s, %s, %s, %s)",
            [(c["customer_id"], c["email"], c["phone"], c["notes"], str(c["row"])) for c in corpus.customers],
        )
        cur.executemany(
            f"INSERT INTO {tables['orders']} (order_id, customer_id, amount) VALUES (%s, %s, %s)",
            [(str(o["order_id"]), o["customer_id"], o["amount"]) for o in corpus.orders],
        )
        cur.executemany(
            f"INSERT INTO {tables['profiles']} (customer_id, email_token) VALUES (%s, %s)",
            [(p["customer_id"], p["email_token"]) for p in corpus.profiles],
        )
    return tables


def warehouse_rows(wh, tables: dict[str, str]) -> dict[str, set]:
    """What is left in the warehouse, by the same row identities as the oracle."""
    with wh.cursor() as cur:
        customers = {(r[0], int(r[1])) for r in cur.execute(f"SELECT customer_id, _row FROM {tables['customers']}").fetchall()}
        orders = {int(r[0]) for r in cur.execute(f"SELECT order_id FROM {tables['orders']}").fetchall()}
        profiles = {int(r[0]) for r in cur.execute(f"SELECT customer_id FROM {tables['profiles']}").fetchall()}
    return {"customers": customers, "orders": orders, "profiles": profiles}
