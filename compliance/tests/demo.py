"""The demo with a steward's decisions: shared by the steward-flow, analyst and browser tests."""

from __future__ import annotations

import html
import re

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from compliance.models import PiiFinding
from compliance.policies import decide_finding
from demo.install import PIPELINE
from pipelines.models import Dataset, Pipeline, RunStatus, Step
from pipelines.runner import save_step_inputs

from .conftest import run_now

# A second Chart table that carries the customers' emails: hashed with the same key, it joins.
CONTACTS_SQL = (
    "SELECT CAST(trim(customer_id) AS bigint) AS customer_id, nullif(lower(trim(email)), '') AS email"
    " FROM explore.customers"
)


def load_demo(rows: int = 300) -> Pipeline:
    """The demo pipeline, plus a ``contacts`` refine step; run once (the PII hook scans on ingest)."""
    call_command("load_demo", "--rows", str(rows))
    pipeline = Pipeline.objects.get(name=PIPELINE)
    contacts = Dataset.objects.create(name="contacts", layer="chart", table="contacts")
    Step.objects.create(
        pipeline=pipeline, name="refine_contacts", kind="refine", output=contacts, position=50,
        write_mode="replace", sql=CONTACTS_SQL,
    )
    save_step_inputs(pipeline)
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return pipeline


def user_in_role(username: str, role: str):
    user = get_user_model().objects.create_user(username, password="pw-" + username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def confirm_customer_findings(steward) -> list:
    """What a steward does in the admin: confirm every finding of the raw customers (proposes policies)."""
    proposed = []
    for finding in PiiFinding.objects.filter(dataset__layer="explore", dataset__table="customers"):
        proposed += decide_finding(finding, status=PiiFinding.Status.CONFIRMED, actor=steward)
    return proposed


def clear_pii(wh) -> dict[str, set[str]]:
    """The demo's clear personal values, as received: emails, phones, birth dates, names."""
    with wh.cursor() as cur:
        rows = cur.execute(
            "SELECT email, phone, birth_date, first_name, last_name FROM explore.customers"
        ).fetchall()
    out: dict[str, set[str]] = {"email": set(), "phone": set(), "birth_date": set(), "name": set()}
    for email, phone, birth, first, last in rows:
        if email and email.strip():
            out["email"] |= {email.strip(), email.strip().lower()}
        if phone and phone.strip():
            out["phone"].add(phone.strip())
        if birth and birth.strip():
            out["birth_date"].add(birth.strip())
            parts = re.split(r"[-/]", birth.strip())
            if len(parts) == 3 and len(parts[2]) == 4:  # DD/MM/YYYY also appears as an ISO date once typed
                out["birth_date"].add(f"{parts[2]}-{parts[1]}-{parts[0]}")
            elif len(parts) == 3:
                out["birth_date"].add("-".join(parts))
        for name in (first, last):
            if name and len(name.strip()) >= 3:
                out["name"].add(name.strip())
    return out


def leaks(text: str, clear: dict[str, set[str]]) -> list[str]:
    """Clear PII values found in a page (names only as a whole cell or code value, to avoid words)."""
    return Needles(clear).found(text)


class Needles:
    """The demo's clear values, prepared once for many pages: what :func:`leaks_by_regex` finds, faster.

    Emails, phones and birth dates: anywhere in the page, as received or HTML-escaped (the escaped
    form is looked for only when it differs). Names: only as the whole text between a ``>`` and the
    next ``<`` around optional whitespace. Instead of one regular expression per name per page, the
    page's texts between tags are collected once (``>([^<>]*)<``, stripped as ``\\s*`` would) and each
    name looked up in that set; a name with an angle bracket or edge whitespace, which no such text
    can hold, keeps its regular expression. ``test_demo_helpers.py`` compares both on every case.
    """

    def __init__(self, clear: dict[str, set[str]]):
        self.anywhere = [(v, html.escape(v)) for kind in ("email", "phone", "birth_date") for v in clear[kind]]
        self.names = [(name, html.escape(name)) for name in clear["name"]]

    def found(self, text: str) -> list[str]:
        found = [v for v, escaped in self.anywhere if v in text or (escaped != v and escaped in text)]
        cells = {piece.strip() for piece in _CELL.findall(text)}
        for name, escaped in self.names:
            if _CELL_SAFE.fullmatch(name):
                if name in cells or escaped in cells:
                    found.append(name)
            elif _name_regex(name).search(text):
                found.append(name)
        return found


_CELL = re.compile(r">([^<>]*)<")
_CELL_SAFE = re.compile(r"[^<>\s](?:[^<>]*[^<>\s])?", re.DOTALL)


def _name_regex(name: str) -> re.Pattern:
    return re.compile(rf">\s*({re.escape(name)}|{re.escape(html.escape(name))})\s*<")


def leaks_by_regex(text: str, clear: dict[str, set[str]]) -> list[str]:
    """The plain way, one search per value (what :class:`Needles` must agree with)."""
    found = []
    for kind in ("email", "phone", "birth_date"):
        found += [v for v in clear[kind] if v in text or html.escape(v) in text]
    for name in clear["name"]:
        if _name_regex(name).search(text):
            found.append(name)
    return found
