"""The lineage admin: the graph page, the outbox with retry, received events."""

from lineage import graph
from lineage.models import LineageNode, OutboxEvent, ReceivedEvent

from .conftest import run_now


def test_the_lineage_page_embeds_the_graph_and_the_dataset_shortcut_opens_it(admin_client, wh, simple_pipeline, lineage_hook):
    pipeline = simple_pipeline()
    run_now(pipeline)
    dataset = pipeline.steps.get(name="total").output
    response = admin_client.get(f"/admin/lineage/lineagenode/dataset/{dataset.pk}/")
    node = LineageNode.objects.get(name="navigate.people_total", column="")
    assert response.status_code == 302 and response.url == f"/admin/lineage/lineagenode/{node.pk}/graph/"
    page = admin_client.get(response.url, {"depth": "2", "direction": "upstream"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="lineage-data"' in html and "lineage/lineage.js" in html and "chart.people" in html
    assert admin_client.get(response.url, {"depth": "bad", "direction": "bad"}).status_code == 200
    listing = admin_client.get("/admin/lineage/lineagenode/", {"pii": "flagged"})
    assert listing.status_code == 200
    graph.mark_pii("raw_people", "name", "PERSON")
    assert "explore.people" in admin_client.get("/admin/lineage/lineagenode/", {"pii": "flagged"}).content.decode()


def test_the_outbox_lists_failed_events_and_retry_puts_them_back(admin_client, wh, simple_pipeline, lineage_hook):
    run_now(simple_pipeline())
    OutboxEvent.objects.filter(pk=OutboxEvent.objects.first().pk).update(status="failed", attempts=12, last_error="HTTP 500: down")
    page = admin_client.get("/admin/lineage/outboxevent/", {"status": "failed"})
    assert page.status_code == 200 and "HTTP 500: down" in page.content.decode()
    failed = OutboxEvent.objects.get(status="failed")
    response = admin_client.post(
        "/admin/lineage/outboxevent/", {"action": "retry_events", "_selected_action": [failed.pk]}, follow=True
    )
    assert "1 event(s) will be sent" in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == "pending" and failed.attempts == 0
    response = admin_client.post(
        "/admin/lineage/outboxevent/", {"action": "deliver_now", "_selected_action": [failed.pk]}, follow=True
    )
    assert "OPENLINEAGE_URL is not set" in response.content.decode()
    assert admin_client.get(f"/admin/lineage/outboxevent/{failed.pk}/change/").status_code == 200
    assert admin_client.get("/admin/lineage/receivedevent/").status_code == 200
    assert not ReceivedEvent.objects.exists()


def test_the_dataset_page_links_to_its_lineage_for_those_who_may_read_it(client, admin_client, wh, simple_pipeline, lineage_hook):
    from atlas.api.testing import user_with_role

    pipeline = simple_pipeline()
    run_now(pipeline)
    dataset = pipeline.steps.get(name="total").output
    page = admin_client.get(f"/admin/pipelines/dataset/{dataset.pk}/change/")
    assert page.status_code == 200
    link = f'href="/admin/lineage/lineagenode/dataset/{dataset.pk}/"'
    assert link in page.content.decode()
    followed = admin_client.get(f"/admin/lineage/lineagenode/dataset/{dataset.pk}/", follow=True)
    assert followed.status_code == 200 and "navigate.people_total" in followed.content.decode()

    analyst = user_with_role("Analyst", is_staff=True)  # reads lineage
    client.force_login(analyst)
    assert link in client.get(f"/admin/pipelines/dataset/{dataset.pk}/change/").content.decode()
    operator_without_lineage = user_with_role(None, "no-lineage", is_staff=True)
    from django.contrib.auth.models import Permission

    operator_without_lineage.user_permissions.add(Permission.objects.get(codename="view_dataset"))
    client.force_login(operator_without_lineage)
    page = client.get(f"/admin/pipelines/dataset/{dataset.pk}/change/")
    assert page.status_code == 200 and link not in page.content.decode()
