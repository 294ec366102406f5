"""Never someone else's data: an adversarial corpus, erasures and exports compared with an independent oracle.

The oracle (``corpus.Corpus.rows_of``) knows which customer each generated row is
about and never compares values; Atlas must find exactly those rows through keys,
expansion and the review gate — on DuckDB and on PostgreSQL.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from compliance.models import PiiFinding
from compliance.policies import pseudonym
from pipelines.models import Dataset
from privacy import keys, service
from privacy.models import DataSubjectRequest
from privacy.search import DsrError

from . import corpus as corpus_mod

SEEDS = [11, 29]


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def crm(request, wh, db, dsr_settings):
    corpus = corpus_mod.generate(request.param)
    tables = corpus_mod.load(wh, corpus)
    ds = {
        "customers": Dataset.objects.create(name="crm_customers", layer="explore", table="crm_customers"),
        "orders": Dataset.objects.create(name="crm_orders", layer="explore", table="crm_orders"),
        "profiles": Dataset.objects.create(name="crm_profiles", layer="chart", table="crm_profiles"),
    }
    # The scenario: the steward confirmed an e-mail finding on the free-text notes.
    PiiFinding.objects.create(dataset=ds["customers"], column="notes", entity="EMAIL_ADDRESS", free_text=True,
                              status="confirmed")
    for name, column, kind, storage in [
        ("customers", "email", "email", "clear"), ("customers", "phone", "phone", "clear"),
        ("customers", "customer_id", "customer_id", "clear"), ("orders", "customer_id", "customer_id", "clear"),
        ("profiles", "customer_id", "customer_id", "clear"), ("profiles", "email_token", "email", "hashed"),
    ]:
        keys.declare_key(ds[name], column, kind=kind, storage=storage)
    return corpus, tables, ds


def _erase(identifiers: dict) -> DataSubjectRequest:
    return service.run(service.verify(service.submit("erasure", identifiers)))


def test_free_text_is_never_a_key_and_placeholders_are_never_identifiers(crm):
    corpus, tables, ds = crm
    with pytest.raises(keys.SubjectKeyError, match="free text"):
        keys.declare_key(ds["customers"], "notes", kind="email")
    assert not [k for k in keys.propose_keys() if k.column == "notes"]
    common_token = pseudonym("")
    for kind, value in [("email", "<EMAIL_ADDRESS>"), ("email", "[REDACTED]"), ("email", "N/A"), ("email", "unknown"),
                        ("phone", "***1234"), ("phone", "XXXX-5678"), ("email", common_token), ("email", " - ")]:
        with pytest.raises(DsrError, match="cannot identify one person") as err:
            service.submit("erasure", {kind: [value]})
        assert value.strip() not in str(err.value) or value.strip() in ("-",)
    assert not DataSubjectRequest.objects.exists()


def test_erasures_remove_exactly_the_subjects_rows(crm, wh):
    corpus, tables, ds = crm
    everything = corpus.all_rows()
    erased: set[int] = set()

    def expect_left():
        expected = corpus.rows_of({c["owner"] for c in corpus.customers} - erased)
        assert corpus_mod.warehouse_rows(wh, tables) == expected

    # 1. A customer with an address of their own that someone else's note quotes (in upper case).
    subject = next(c for c in sorted(corpus.referred) if c in corpus.unique_email)
    req = _erase({"email": [corpus.unique_email[subject].upper()]})
    erased.add(subject)
    expect_left()
    # Another customer's note still names them: not a key, not retained, so the proof is red and says where.
    assert req.status == "in_progress", req.error
    assert "explore.crm_customers.notes refers to the erased subject" in req.error
    assert {(r["table"], r["column"]) for r in req.residue} == {("explore.crm_customers", "notes")}
    with pytest.raises(DsrError, match="legal basis"):
        service.retain_reference(ds["customers"], "notes", legal_basis=" ")
    service.retain_reference(ds["customers"], "notes", legal_basis="Other customers' correspondence (their data).")
    req = service.check_erasure(req)
    assert req.status == "completed" and req.proof["retained"][0]["column"] == "notes"
    expect_left()

    # 2. A family address: it reaches several customers, so the request stops before deleting anything.
    address, members = corpus.families[0]
    req = _erase({"email": [address]})
    assert req.status == "review" and req.review["reached"]["customer_id"] == len(members)
    assert address not in req.error and not req.erasures.exists()
    expect_left()
    with pytest.raises(DsrError, match="needs a note"):
        service.approve_expansion(req, note="")
    req = service.approve_expansion(req, note="The family asked together; letter signed by all members.")
    req = service.run(req)
    erased |= set(members)
    expect_left()
    assert req.status == "completed", req.error

    # 3. A customer without a usable address (placeholder or empty, profile token of a common value), by id.
    subject = next(c["owner"] for c in corpus.customers
                   if c["owner"] not in erased and c["owner"] not in corpus.unique_email
                   and not any(c["owner"] in m for _, m in corpus.families))
    req = _erase({"customer_id": [str(subject)]})
    erased.add(subject)
    expect_left()
    assert req.status == "completed", req.error

    # 4. By phone, next to masked and empty phones.
    subject = next(c for c in sorted(corpus.unique_phone) if c not in erased and c in corpus.unique_email)
    req = _erase({"phone": [corpus.unique_phone[subject]]})
    erased.add(subject)
    expect_left()
    assert req.status == "completed", req.error
    assert len(corpus_mod.warehouse_rows(wh, tables)["customers"]) < len(everything["customers"])

    # 5. A customer behind the switchboard number, by e-mail: the shared number is not followed (no review).
    subject = next(c for c in corpus.switchboard if c not in erased)
    req = _erase({"email": [corpus.unique_email[subject]]})
    erased.add(subject)
    expect_left()
    assert req.status == "completed", req.error
    assert any(r.get("shared_skipped", {}).get("phone") for r in req.proof["expansion"])
    # Given as the identifier, the switchboard number reaches every customer behind it: review.
    req = _erase({"phone": [corpus_mod.SWITCHBOARD]})
    assert req.status == "review" and req.review["reached"]["customer_id"] >= 5
    expect_left()


def _export_rows(export) -> dict[str, set]:
    out = {"customers": set(), "orders": set(), "profiles": set()}
    with zipfile.ZipFile(export.path) as zf:
        for name in zf.namelist():
            if not name.endswith(".json") or name == "manifest.json":
                continue
            records = json.loads(zf.read(name))
            if name == "explore/crm_customers.json":
                out["customers"] = {(r["customer_id"], int(r["_row"])) for r in records}
            elif name == "explore/crm_orders.json":
                out["orders"] = {int(r["order_id"]) for r in records}
            elif name == "chart/crm_profiles.json":
                out["profiles"] = {int(r["customer_id"]) for r in records}
    return out


def test_access_exports_hold_exactly_the_subjects_rows(crm):
    corpus, tables, ds = crm
    subjects = [c for c in sorted(corpus.unique_email) if c in corpus.referred][:1]
    in_family = {c for _, members in corpus.families for c in members}
    subjects += [c for c in sorted(corpus.unique_phone) if c not in subjects and c not in in_family][:1]
    # A family member asking by their own phone: the phone leads to the shared address, so to the family.
    member = next(c for c in sorted(corpus.unique_phone) if c in in_family)
    req = service.run(service.verify(service.submit("access", {"phone": [corpus.unique_phone[member]]})))
    assert req.status == "review" and req.review["reached"]["customer_id"] > 1 and not req.exports.exists()
    for subject in subjects:
        ids = ({"email": [corpus.unique_email[subject]]} if subject in corpus.unique_email
               else {"phone": [corpus.unique_phone[subject]]})
        req = service.run(service.verify(service.submit("access", ids)))
        assert req.status == "completed", req.error
        assert _export_rows(req.exports.get()) == corpus.rows_of({subject})
    # A family address stops for review: no export is made.
    address, members = corpus.families[-1]
    req = service.run(service.verify(service.submit("access", {"email": [address]})))
    assert req.status == "review" and not req.exports.exists()
