"""Subject keys proposed and confirmed where an operator meets them: the dataset page (issue 18, item 5)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from atlas.models import AuditEvent
from compliance.models import PiiFinding
from privacy.models import SubjectKey
from privacy.panels import candidates


def dataset_page(ds) -> str:
    return reverse("admin:pipelines_dataset_change", args=[ds.pk])


def confirm_url(key, next_url: str = "") -> str:
    url = reverse("admin:privacy_subjectkey_confirm_one", args=[key.pk])
    return f"{url}?next={next_url}" if next_url else url


@pytest.fixture
def phone_found(shop):
    """raw_customers.phone: a confirmed phone finding that is no key yet."""
    pipeline, ds, _ = shop
    PiiFinding.objects.create(dataset=ds["raw_customers"], column="phone", entity="PHONE_NUMBER", status="confirmed")
    return ds


# --- failure paths first

def test_confirming_needs_a_post_and_the_change_permission(phone_found, admin_client, client):
    ds = phone_found
    key = SubjectKey.objects.create(dataset=ds["raw_customers"], column="phone", kind="phone", status="proposed")
    assert admin_client.get(confirm_url(key)).status_code == 405
    viewer = get_user_model().objects.create_user("viewer", password="pw-123456-x", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_subjectkey", "view_dataset"]))
    client.force_login(viewer)
    assert client.post(confirm_url(key)).status_code == 403
    key.refresh_from_db()
    assert key.status == "proposed" and not AuditEvent.objects.filter(action="dsr.key.confirmed", target_id=str(key.pk))
    # a viewer sees the keys on the dataset page, without the buttons
    page = client.get(dataset_page(ds["raw_customers"])).content.decode()
    assert 'id="privacy-keys"' in page and "atlas-key-confirm" not in page and 'id="privacy-keys-propose"' not in page


def test_the_way_back_is_a_path_of_this_site_only(phone_found, admin_client):
    ds = phone_found
    key = SubjectKey.objects.create(dataset=ds["raw_customers"], column="phone", kind="phone", status="proposed")
    response = admin_client.post(confirm_url(key, "https://evil.example/"))
    assert response.status_code == 302 and response["Location"] == reverse("admin:privacy_subjectkey_changelist")
    response = admin_client.post(reverse("admin:privacy_subjectkey_propose") + "?next=//evil.example/x")
    assert response["Location"] == reverse("admin:privacy_subjectkey_changelist")


def test_a_dataset_without_pii_or_keys_has_no_key_panel(phone_found, admin_client):
    page = admin_client.get(dataset_page(phone_found["revenue"])).content.decode()
    assert 'id="privacy-keys"' not in page


def test_free_text_and_masked_columns_are_never_candidates(phone_found):
    ds = phone_found
    PiiFinding.objects.create(dataset=ds["raw_customers"], column="name", entity="EMAIL_ADDRESS", status="confirmed",
                              free_text=True)
    PiiFinding.objects.create(dataset=ds["raw_customers"], column="customer_id", entity="PHONE_NUMBER",
                              status="proposed")  # not confirmed
    assert candidates(ds["raw_customers"]) == [("phone", "phone")]  # email is a key already


# --- the flow

def test_keys_are_proposed_and_confirmed_from_the_dataset_page(phone_found, admin_client):
    ds = phone_found
    here = dataset_page(ds["raw_customers"])
    page = admin_client.get(here).content.decode()
    assert 'id="privacy-keys-candidates"' in page and "<code>phone</code> (phone)" in page
    assert 'data-column="email" data-status="confirmed"' in page

    response = admin_client.post(reverse("admin:privacy_subjectkey_propose") + f"?next={here}%23privacy-keys")
    assert response.status_code == 302 and response["Location"] == here + "#privacy-keys"
    key = SubjectKey.objects.get(dataset=ds["raw_customers"], column="phone")
    assert (key.status, key.origin) == ("proposed", "finding")
    page = admin_client.get(here).content.decode()
    assert 'data-column="phone" data-status="proposed"' in page and 'id="privacy-keys-proposed"' in page
    assert confirm_url(key) in page and 'id="privacy-keys-candidates"' not in page

    response = admin_client.post(confirm_url(key, here), follow=True)
    key.refresh_from_db()
    assert key.status == "confirmed" and key.confirmed_by.username == "admin"
    assert "Confirmed raw_customers.phone as a phone subject key" in response.content.decode()
    assert AuditEvent.objects.filter(action="dsr.key.confirmed", target_id=str(key.pk)).exists()
    assert 'data-column="phone" data-status="confirmed"' in response.content.decode()


def test_the_overview_names_proposed_keys_and_links_to_their_dataset_panel(phone_found, admin_client, client):
    from privacy import keys

    ds = phone_found
    keys.propose_keys()
    proposed = SubjectKey.objects.filter(status="proposed")
    assert proposed.filter(dataset=ds["raw_customers"], column="phone").exists()
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert f"{proposed.count()} proposed subject key(s) to confirm." in page
    assert "1 proposed subject key on raw_customers to confirm" in page
    assert dataset_page(ds["raw_customers"]) + "#privacy-keys" in page
    # who may not confirm keys is not sent to confirm them
    viewer = get_user_model().objects.create_user("viewer", password="pw-123456-x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_datasubjectrequest"))
    client.force_login(viewer)
    assert "proposed subject key" not in client.get(reverse("admin:index")).content.decode()
