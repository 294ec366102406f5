"""A dataset's data browsed (issue 18, item 4): pages, a sort, chosen columns, CSV; bad parameters told."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.http import QueryDict

from atlas.models import AuditEvent
from atlas.warehouse import WarehouseError
from pipelines import browse
from pipelines.models import Dataset

from .conftest import run_now

ROWS = "id,name,amount\n" + "".join(f"{i},name{i:03d},{(i * 7) % 50}\n" for i in range(1, 121))


@pytest.fixture
def people(wh, simple_pipeline):
    run = run_now(simple_pipeline(ROWS))
    assert run.status == "succeeded", run.error
    return Dataset.objects.get(layer="chart", table="people")


def q(text: str) -> QueryDict:
    return QueryDict(text)


def test_parse_keeps_what_names_columns_and_tells_what_does_not():
    cols = ["id", "name", "amount"]
    query = browse.parse(q("col=amount&col=id&sort=amount&dir=desc&page=2&size=25"), cols)
    assert (query.columns, query.sort, query.descending, query.page, query.size, query.problems) == (
        ["id", "amount"], "amount", True, 2, 25, [])
    bad = browse.parse(q("col=nope&col=id&sort=name&dir=up&page=x&size=7"), cols)
    assert bad.columns == ["id"] and bad.sort is None and not bad.descending and bad.page == 1 and bad.size == 50
    assert bad.problems == [
        "No column named 'nope': left out.", "Cannot sort by 'name': it is not a column shown; not sorted.",
        "The sort direction is asc or desc; ascending.", "Page sizes are 25, 50, 100, 200; 50 rows a page.",
        "The page is a whole number; 1."]
    assert browse.parse(q("col=zzz"), cols).columns == cols  # nothing valid chosen: every column
    assert query.params(page=3) == {"page": 3, "size": 25, "sort": "amount", "dir": "desc", "col": ["id", "amount"]}


def test_a_page_is_sorted_over_the_whole_table_and_pages_neither_repeat_nor_skip(people):
    query = browse.parse(q("col=id&col=amount&sort=amount&dir=desc&size=25"), browse.table_columns(people))
    seen = []
    for number in range(1, 6):
        query.page = number
        data = browse.page(None, people, query)
        assert data["count"] == 120 and data["pages"] == 5
        seen.extend(data["rows"])
    assert len(seen) == 120 and sorted(r[0] for r in seen) == list(range(1, 121))
    amounts = [float(r[1]) for r in seen]
    assert amounts == sorted(amounts, reverse=True)
    first = browse.page(None, people, browse.parse(q("page=1&size=25"), browse.table_columns(people)))
    assert (first["first"], first["last"]) == (1, 25)


def test_a_page_past_the_end_shows_the_last_and_says_so(people):
    query = browse.parse(q("page=99&size=100"), browse.table_columns(people))
    data = browse.page(None, people, query)
    assert query.page == 2 and (data["first"], data["last"]) == (101, 120)
    assert query.problems == ["There are 2 pages; the last one is shown."]


def test_the_warehouse_refuses_a_column_the_table_lacks(people, wh):
    with pytest.raises(WarehouseError, match="has no column 'x\"; drop'"):
        wh.browse("chart", "people", ["id", 'x"; drop'])
    with pytest.raises(WarehouseError, match="has no column"):
        wh.browse("chart", "people", ["id"], order_by="nope")


def test_the_csv_holds_every_row_of_the_chosen_columns_in_order_and_is_audited(people, monkeypatch):
    monkeypatch.setattr(browse, "CSV_BATCH", 50)  # three batches
    query = browse.parse(q("col=id&col=name&sort=id&dir=desc"), browse.table_columns(people))
    rows = list(csv.reader(io.StringIO("".join(browse.csv_lines(None, people, query)))))
    assert rows[0] == ["id", "name"] and len(rows) == 121
    assert [int(r[0]) for r in rows[1:]] == list(range(120, 0, -1)) and rows[1][1] == "name120"
    event = AuditEvent.objects.get(action="dataset.downloaded")
    assert event.detail["columns"] == ["id", "name"] and event.detail["sort"] == "id"


def test_the_data_page_and_csv_for_who_may_view_the_dataset(people, client):
    users = get_user_model().objects
    client.force_login(users.create_user("nobody", is_staff=True))
    assert client.get(f"/admin/pipelines/dataset/{people.pk}/data/").status_code == 404
    viewer = users.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_dataset"))
    client.force_login(viewer)
    page = client.get(f"/admin/pipelines/dataset/{people.pk}/data/?sort=amount&dir=desc&size=25&page=2")
    html = page.content.decode()
    assert page.status_code == 200 and "Rows 26–50 of 120, sorted by amount (descending)." in html
    assert "Page 2 of 5" in html and 'rel="next"' in html and 'rel="prev"' in html
    told = client.get(f"/admin/pipelines/dataset/{people.pk}/data/?col=secret").content.decode()
    assert "No column named &#x27;secret&#x27;: left out." in told
    download = client.get(f"/admin/pipelines/dataset/{people.pk}/data.csv?col=id&sort=id")
    assert download.status_code == 200 and download["Content-Disposition"] == 'attachment; filename="chart.people.csv"'
    body = b"".join(download.streaming_content).decode()
    assert body.splitlines()[:3] == ["id", "1", "2"]
    refused = client.get(f"/admin/pipelines/dataset/{people.pk}/data.csv?col=id&sort=nope")
    assert refused.status_code == 400 and "Cannot sort by 'nope'" in refused.content.decode()
    raw_total = Dataset.objects.create(name="unloaded", layer="navigate", table="not_yet")
    assert client.get(f"/admin/pipelines/dataset/{raw_total.pk}/data/").status_code == 404
