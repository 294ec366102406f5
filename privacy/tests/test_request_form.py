"""A request from the admin (issue 18, item 5): a field per identifier kind; Verify and Run on its page."""

from __future__ import annotations

from django.urls import reverse

from atlas.api.testing import user_with_role
from privacy.models import DataSubjectRequest

from .conftest import CUSTOMERS

ADD = "admin:privacy_datasubjectrequest_add"


def form_post(client, **identifiers):
    return client.post(reverse(ADD), {"kind": "access", "reference": "Ticket 7", "received_at_0": "2026-11-20",
                                      "received_at_1": "09:00:00", **identifiers}, follow=True)


def test_without_confirmed_keys_the_form_says_to_declare_them_first(db, client):
    client.force_login(user_with_role("Steward", is_staff=True))
    page = client.get(reverse(ADD)).content.decode()
    assert 'name="identifiers' not in page
    answer = form_post(client)
    assert "No identifier kind is known yet: declare and confirm subject keys" in answer.content.decode()
    assert "on the Subject keys panel of a dataset page" in answer.content.decode()  # where the operator meets them
    assert not DataSubjectRequest.objects.exists()


def test_a_field_per_identifier_kind_one_value_a_line(shop, client):
    client.force_login(user_with_role("Steward", is_staff=True))
    page = client.get(reverse(ADD)).content.decode()
    assert 'name="identifiers_email"' in page and 'name="identifiers_customer_id"' in page
    assert 'name="identifiers"' not in page  # no JSON to type any more
    empty = form_post(client, identifiers_email="  \n ")
    assert "Give at least one identifier" in empty.content.decode() and not DataSubjectRequest.objects.exists()
    email = CUSTOMERS.splitlines()[1].split(",")[1].strip()
    form_post(client, identifiers_email=f" {email.upper()} \n\n", identifiers_customer_id="1\n2")
    req = DataSubjectRequest.objects.get()
    assert req.identifiers == {"email": [email.lower()], "customer_id": ["1", "2"]} and req.reference == "Ticket 7"


def test_the_request_page_verifies_then_runs(shop, client):
    steward = user_with_role("Steward", is_staff=True)
    client.force_login(steward)
    email = CUSTOMERS.splitlines()[1].split(",")[1].strip()
    form_post(client, identifiers_email=email)
    req = DataSubjectRequest.objects.get()
    page = reverse("admin:privacy_datasubjectrequest_change", args=[req.pk])
    act = reverse("admin:privacy_datasubjectrequest_act", args=[req.pk])
    html = client.get(page).content.decode()
    assert '<button type="submit" class="atlas-tool-button" title="The requester' in html and ">Run</button>" not in html
    assert client.get(act).status_code == 405
    assert "Choose Verify or Run." in client.post(act, {"action": "erase"}, follow=True).content.decode()
    client.post(act, {"action": "verify"})
    req.refresh_from_db()
    assert req.status == "verified"
    html = client.get(page).content.decode()
    assert ">Run</button>" in html and ">Verify</button>" not in html
    client.post(act, {"action": "run"})
    req.refresh_from_db()
    assert req.status == "completed", req.error  # tests run background tasks inline
    auditor = user_with_role("Auditor", is_staff=True)
    client.force_login(auditor)
    assert client.post(act, {"action": "verify"}).status_code == 403


def test_an_empty_request_list_says_what_to_do_first(db, client):
    client.force_login(user_with_role("Steward", is_staff=True))
    html = client.get(reverse("admin:privacy_datasubjectrequest_changelist")).content.decode()
    assert "No data-subject requests yet." in html and reverse("admin:privacy_subjectkey_changelist") in html
