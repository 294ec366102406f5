import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from atlas import audit
from atlas.models import AppendOnlyError, AuditEvent
from pipelines import runner


@pytest.fixture
def events(db):
    user = get_user_model().objects.create_user("steward")  # itself event #1 (auth.user.created)
    return [audit.record("policy.change", actor=user, column="email", policy=f"hash{i}") for i in range(4)]


def test_events_chain_and_verify(events, capsys):
    assert [e.seq for e in events] == [2, 3, 4, 5]
    assert events[1].prev_hash == events[0].hash
    assert list(audit.verify()) == []
    call_command("verify_audit_log")
    assert "5 events, chain intact" in capsys.readouterr().out


def _raw(sql, params):
    with connection.cursor() as cur:
        cur.execute(sql, params)


def test_an_edited_event_is_caught(events):
    _raw("UPDATE atlas_auditevent SET detail = %s WHERE seq = 3", ['{"column": "email", "policy": "keep"}'])
    problems = list(audit.verify())
    assert [(p.seq, "edited" in p.reason) for p in problems] == [(3, True)]
    with pytest.raises(CommandError, match="does not verify"):
        call_command("verify_audit_log")


def test_a_deleted_event_in_the_middle_is_caught(events):
    _raw("DELETE FROM atlas_auditevent WHERE seq = %s", [3])
    reasons = " ".join(p.reason for p in audit.verify())
    assert "expected event #3 next, found #4" in reasons


def test_a_deleted_last_event_is_caught(events):
    _raw("DELETE FROM atlas_auditevent WHERE seq = %s", [5])
    assert any("head says #5" in p.reason for p in audit.verify())


def test_an_inserted_event_is_caught(events):
    forged = AuditEvent(seq=6, action="policy.change", actor_name="mallory", prev_hash="f" * 64, detail={})
    forged.hash = forged.compute_hash()
    forged.save()
    assert any(p.seq == 6 for p in audit.verify())


def test_events_cannot_be_changed_or_deleted_through_the_orm(events):
    with pytest.raises(AppendOnlyError):
        events[0].save()
    with pytest.raises(AppendOnlyError):
        events[0].delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update(action="x")


def test_the_admin_shows_events_but_cannot_change_them(events, admin_client):
    assert admin_client.get("/admin/atlas/auditevent/").status_code == 200
    page = admin_client.get(f"/admin/atlas/auditevent/{events[0].pk}/change/")
    assert page.status_code == 200 and b"policy.change" in page.content
    assert admin_client.post(f"/admin/atlas/auditevent/{events[0].pk}/delete/").status_code == 403
    assert admin_client.get("/admin/atlas/auditevent/add/").status_code == 403


def test_triggering_and_cancelling_a_run_are_audited(wh, db):
    from pipelines.models import Pipeline

    user = get_user_model().objects.create_user("operator")
    pipeline = Pipeline.objects.create(name="p")
    run = runner.start_run(pipeline, actor=user, dispatch=False)
    runner.cancel_run(run, actor=user)
    actions = list(AuditEvent.objects.filter(action__startswith="pipeline.").order_by("seq")
                   .values_list("action", "actor_name", "detail"))
    assert actions == [
        ("pipeline.run", "operator", {"run_id": run.pk, "trigger": "manual"}),
        ("pipeline.cancel", "operator", {"run_id": run.pk, "outcome": "cancelled"}),
    ]
