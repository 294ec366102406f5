"""Definitions as code beyond pipelines (issue 19): column policies, retention, records of processing,
notification rules, and path sources written relative to their data root.

Each app declares its kinds (``definition_kinds``); here they go through export, plan and apply
like sources and steps: the same round trip on an empty database, the same diffs, the same refusals.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from alerts.models import AlertRule
from atlas.definitions import plan as plans
from atlas.definitions import project, state
from compliance.models import ColumnPolicy
from pipelines.confinement import local_location, portable_location, relative_to
from pipelines.models import Dataset, DatasetColumn, Pipeline, Source, Step
from quality.models import Check
from retention.models import ProcessingRecord, RetentionPolicy

HOOK_REF = "env:ATLAS_SOURCE_SECRET_HOOK"


@pytest.fixture
def defined(db, tmp_path):
    """The demo project, plus a policy of each kind and two notification rules."""
    from demo.install import install

    pipeline = install(tmp_path / "data")
    customers = Dataset.objects.get(name="customers")
    explore_orders = Dataset.objects.get(name="explore_orders")
    ColumnPolicy.objects.create(dataset=customers, column="email", action="hash", entity="EMAIL_ADDRESS")
    ColumnPolicy.objects.create(dataset=customers, column="phone", action="mask", options={"keep_last": 2})
    ColumnPolicy.objects.create(dataset=customers, column="notes", action="redact", by_default=True)  # Atlas's own
    RetentionPolicy.objects.create(dataset=explore_orders, period_days=365)
    RetentionPolicy.objects.create(dataset=customers, column="signup_at", period_days=3650, action="report", enabled=False)
    ProcessingRecord.objects.create(
        dataset=customers, purpose="Selling and delivering orders.", legal_basis="contract",
        data_subject_categories="customers",
    )
    AlertRule.objects.create(name="failures", events=["run_failed"], channel="webhook",
                             url="https://hooks.example.com/atlas", auth_header_ref=HOOK_REF)
    AlertRule.objects.create(name="ops_mail", pipeline=pipeline, events=["run_failed", "quality_fail"],
                             channel="email", recipients="ops@example.com", min_severity="error")
    return pipeline


def wipe() -> None:
    AlertRule.objects.all().delete()
    ColumnPolicy.objects.all().delete()
    RetentionPolicy.objects.all().delete()
    ProcessingRecord.objects.all().delete()
    Check.objects.all().delete()
    Step.objects.all().delete()
    Pipeline.objects.all().delete()
    Dataset.objects.all().delete()
    Source.objects.all().delete()


def edit(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def by_name(doc: list) -> dict:
    return {d["name"]: d for d in doc}


def test_policies_and_rules_round_trip_on_an_empty_database(defined, tmp_path):
    out = tmp_path / "project"
    call_command("atlas", "export", str(out))
    datasets = by_name(yaml.safe_load((out / "datasets.yml").read_text()))
    customers = datasets["customers"]
    # The policy privacy by default applied (no steward decided it) is Atlas's, not a definition.
    assert [p["column"] for p in customers["column_policies"]] == ["email", "phone"]
    assert customers["column_policies"][1] == {"column": "phone", "action": "mask", "options": {"keep_last": 2}}
    assert datasets["explore_orders"]["retention"] == {"period_days": 365}  # one object, not a list
    assert customers["retention"] == {"column": "signup_at", "period_days": 3650, "action": "report", "enabled": False}
    assert customers["processing_record"]["legal_basis"] == "contract"
    rules = by_name(yaml.safe_load((out / "alert_rules.yml").read_text()))
    assert rules["failures"]["auth_header_ref"] == HOOK_REF  # the secret by reference only
    assert rules["ops_mail"]["pipeline"] == "ecommerce"
    before = state.from_database()
    assert not plans.make_plan(project.read(out))

    wipe()
    call_command("atlas", "apply", str(out))
    assert state.from_database() == before
    assert not plans.make_plan(project.read(out))
    assert not RetentionPolicy.objects.get(dataset__name="customers").enabled
    assert AlertRule.objects.get(name="ops_mail").pipeline.name == "ecommerce"


def test_a_plan_shows_policy_and_rule_changes_and_apply_makes_them(defined, tmp_path, capsys):
    out = tmp_path / "project"
    project.write(state.from_database(), out)

    def change(datasets):
        d = by_name(datasets)
        d["explore_orders"]["retention"]["period_days"] = 400
        policies = d["customers"]["column_policies"]
        policies[:] = [p for p in policies if p["column"] != "phone"]
        policies.append({"column": "postcode", "action": "generalise", "options": {"to": "prefix", "chars": 2}})

    edit(out / "datasets.yml", change)
    edit(out / "alert_rules.yml", lambda rules: by_name(rules)["ops_mail"].update(recipients="oncall@example.com"))

    call_command("atlas", "plan", str(out))
    text = capsys.readouterr().out
    assert "~ retention explore_orders" in text and "period_days: 365 -> 400" in text
    assert "+ column_policies customers/postcode" in text and "- column_policies customers/phone" in text
    assert "~ alert_rules ops_mail" in text and "'ops@example.com' -> 'oncall@example.com'" in text
    assert "Plan: 1 to create, 2 to update, 1 to delete." in text
    call_command("atlas", "apply", str(out), "--allow-delete")
    assert RetentionPolicy.objects.get(dataset__name="explore_orders").period_days == 400
    columns = set(ColumnPolicy.objects.filter(by_default=False).values_list("column", flat=True))
    assert columns == {"email", "postcode"}
    assert AlertRule.objects.get(name="ops_mail").recipients == "oncall@example.com"
    assert not plans.make_plan(project.read(out))


def test_a_project_policy_replaces_the_one_applied_by_default(defined, tmp_path):
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    edit(out / "datasets.yml", lambda d: by_name(d)["customers"]["column_policies"].append(
        {"column": "notes", "action": "anonymise_text"}))
    plans.apply(project.read(out))
    notes = ColumnPolicy.objects.get(dataset__name="customers", column="notes")
    assert (notes.action, notes.by_default, notes.default_for) == ("anonymise_text", False, None)  # decided, in git
    assert not plans.make_plan(project.read(out))


SLACK_SECRET = "T0000/B0000/XXXXsecretXXXX"


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("alert_rules.yml", lambda d: d.append({"name": "chat", "events": ["run_failed"], "channel": "slack",
                                                "url": f"https://hooks.slack.example/services/{SLACK_SECRET}"}),
         "A Slack webhook URL is itself the secret"),
        ("alert_rules.yml", lambda d: by_name(d)["failures"].update(auth_header_ref=f"Bearer {SLACK_SECRET}"),
         "never the secret itself"),
        ("alert_rules.yml", lambda d: by_name(d)["ops_mail"].update(pipeline="nowhere"), "pipeline names pipelines 'nowhere'"),
        ("alert_rules.yml", lambda d: by_name(d)["ops_mail"].update(events=["run_exploded"]), "Unknown event kind"),
        ("datasets.yml", lambda d: by_name(d)["explore_orders"]["retention"].update(period_days=0), "at least 1 day"),
        ("datasets.yml", lambda d: by_name(d)["explore_orders"].update(column_policies=[{"column": "order_id", "action": "hash"}]),
         "Column policies apply to Chart datasets"),
        ("datasets.yml", lambda d: by_name(d)["customers"]["column_policies"][0].update(action="keep"),
         "needs a reason"),
        ("datasets.yml", lambda d: by_name(d)["customers"]["processing_record"].update(purpose=" "), "State the purpose"),
    ],
)
def test_a_policy_or_rule_the_models_refuse_is_refused_and_nothing_changes(defined, tmp_path, name, change, message):
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    edit(out / name, change)
    before = state.from_database()
    with pytest.raises(plans.ApplyError, match=message) as caught:
        plans.apply(project.read(out))
    assert SLACK_SECRET not in str(caught.value)
    assert state.from_database() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: by_name(d)["explore_orders"].update(retention=[{"period_days": 30}]), "is not of type 'object'"),
        (lambda d: by_name(d)["explore_orders"]["retention"].update(status="within"), "Additional properties"),
        (lambda d: by_name(d)["customers"]["column_policies"][0].update(by_default=True), "Additional properties"),
        (lambda d: by_name(d)["customers"]["column_policies"][0].update(action="scramble"), "is not one of"),
    ],
)
def test_a_malformed_policy_is_refused_naming_the_file(defined, tmp_path, change, message):
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    edit(out / "datasets.yml", change)
    with pytest.raises(project.ProjectError, match=message) as caught:
        project.read(out)
    assert str(out / "datasets.yml") in str(caught.value)


def test_retention_of_a_loaded_dataset_names_a_column_it_has(defined, tmp_path):
    """A dataset never loaded takes the policy as written; once its columns are known, they are checked."""
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    edit(out / "datasets.yml", lambda d: by_name(d)["explore_orders"]["retention"].update(column="placed_on"))
    orders = Dataset.objects.get(name="explore_orders")
    DatasetColumn.objects.create(dataset=orders, name="_ingested_at", data_type="TIMESTAMP WITH TIME ZONE")
    with pytest.raises(plans.ApplyError, match="explore_orders has no column 'placed_on'"):
        plans.apply(project.read(out))
    DatasetColumn.objects.create(dataset=orders, name="placed_on", data_type="TIMESTAMP", position=1)
    plans.apply(project.read(out))
    assert RetentionPolicy.objects.get(dataset=orders).column == "placed_on"


# --- path sources: relative to their data root in the files ----------------------------------------
@pytest.fixture
def roots(settings, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    (second / "exports").mkdir(parents=True)
    first.mkdir()
    (second / "exports" / "a.csv").write_text("id\n1\n")
    (second / "dup.csv").write_text("id\n2\n")
    (first / "dup.csv").write_text("id\n3\n")
    settings.ATLAS_DATA_ROOTS = [str(first), str(second)]
    return first, second


def test_a_path_source_is_written_relative_to_its_data_root_and_applied_on_another_machine(db, roots, tmp_path, settings):
    first, second = roots
    Source.objects.create(name="one_file", location=str(second / "exports" / "a.csv"))
    Source.objects.create(name="a_glob", location=str(second / "exports" / "*.csv"))
    Source.objects.create(name="not_yet", location=str(first / "incoming" / "b.csv"))  # the files come later
    Source.objects.create(name="shadowed", location=str(second / "dup.csv"))  # "dup.csv" would name first's
    Source.objects.create(name="over_http", kind="url", location="https://data.example.com/a.csv")
    out = tmp_path / "project"
    call_command("atlas", "export", str(out))
    sources = {s["name"]: s["location"] for s in yaml.safe_load((out / "sources.yml").read_text())}
    assert sources == {
        "one_file": "exports/a.csv", "a_glob": "exports/*.csv", "not_yet": "incoming/b.csv",
        "shadowed": str(second / "dup.csv"), "over_http": "https://data.example.com/a.csv",
    }
    assert not plans.make_plan(project.read(out))

    # Another machine: other roots, the same files under them.
    there = tmp_path / "there"
    (there / "b" / "exports").mkdir(parents=True)
    (there / "a").mkdir()
    (there / "b" / "exports" / "a.csv").write_text("id\n1\n")
    settings.ATLAS_DATA_ROOTS = [str(there / "a"), str(there / "b"), str(second)]
    Source.objects.all().delete()
    call_command("atlas", "apply", str(out))
    located = dict(Source.objects.values_list("name", "location"))
    assert located["one_file"] == str((there / "b" / "exports" / "a.csv").resolve())
    assert located["a_glob"] == str((there / "b" / "exports").resolve() / "*.csv")
    assert located["not_yet"] == str((there / "a" / "incoming" / "b.csv").resolve())  # under the first root
    assert located["shadowed"] == str(second / "dup.csv")
    assert not plans.make_plan(project.read(out))


def test_an_absolute_location_in_a_project_is_the_same_definition_as_its_relative_form(db, roots, tmp_path):
    first, second = roots
    Source.objects.create(name="one_file", location=str(second / "exports" / "a.csv"))
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    edit(out / "sources.yml", lambda d: d[0].update(location=str(second / "exports" / "a.csv")))
    assert not plans.make_plan(project.read(out))  # no endless "change" between two spellings


def test_locations_outside_the_roots_stay_as_written_and_a_known_directory_comes_first(roots, tmp_path):
    first, second = roots
    assert portable_location(str(tmp_path / "elsewhere" / "c.csv")) == str(tmp_path / "elsewhere" / "c.csv")
    assert portable_location("relative/already.csv") == "relative/already.csv"
    assert local_location("dup.csv") == str((first / "dup.csv").resolve())  # the first root holding it
    with relative_to(second):
        assert local_location("dup.csv") == str((second / "dup.csv").resolve())
    assert local_location(str(second / "dup.csv")) == str(second / "dup.csv")


def test_each_applied_policy_is_in_its_apps_audit_trail(defined, tmp_path):
    from atlas.models import AuditEvent

    out = tmp_path / "project"
    project.write(state.from_database(), out)

    def change(datasets):
        d = by_name(datasets)
        d["explore_orders"]["retention"]["period_days"] = 30
        d["customers"]["column_policies"] = [p for p in d["customers"]["column_policies"] if p["column"] != "phone"]
        d["customers"]["column_policies"][0]["action"] = "redact"
        d["orders"]["processing_record"] = {"purpose": "Delivering orders.", "legal_basis": "contract",
                                            "data_subject_categories": "customers"}

    edit(out / "datasets.yml", change)
    seen = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    plans.apply(project.read(out), allow_delete=True)
    events = {(e.action, e.detail.get("column") or e.detail.get("dataset")): e
              for e in AuditEvent.objects.filter(seq__gt=seen)}
    assert events[("pii.policy.set", "email")].detail["before"] == {"action": "hash"}
    assert events[("pii.policy.set", "email")].target_repr.startswith("customers.email")
    assert events[("pii.policy.deleted", "phone")].detail["dataset"] == "customers"
    assert events[("retention.policy_changed", "_ingested_at")].detail["period_days"] == 30
    assert events[("retention.record_created", "orders")].detail["legal_basis"] == "contract"
    assert ("definitions.apply", None) in events


def test_policies_and_rules_have_versions_the_admin_warns_and_a_run_records(defined, tmp_path, admin_client):
    """Issue 19, item 3: a policy or a notification rule is versioned like a step (who, when, what
    changed, restorable); applied from files, its change page says so; a run records its version."""
    from django.urls import reverse

    from atlas.history import latest_versions

    out = tmp_path / "project"
    project.write(state.from_database(), out)
    edit(out / "datasets.yml", lambda d: by_name(d)["explore_orders"]["retention"].update(period_days=30))
    edit(out / "alert_rules.yml", lambda d: by_name(d)["failures"].update(max_per_window=3))
    plans.apply(project.read(out), allow_delete=True)

    retention = RetentionPolicy.objects.get(dataset__name="explore_orders")
    latest, previous = retention.history.all()[:2]
    assert latest.history_change_reason.startswith(plans.APPLY_REASON)
    assert latest.diff_against(previous).changed_fields == ["period_days"]
    rule = AlertRule.objects.get(name="failures")
    assert rule.history.latest().max_per_window == 3 and rule.history.count() == 2
    email = ColumnPolicy.objects.get(dataset__name="customers", column="email")
    assert email.history.exists() and ProcessingRecord.objects.get().history.exists()

    # the warehouse's state Atlas refreshes is no version
    RetentionPolicy.objects.filter(pk=retention.pk).update(status="ok")
    retention.refresh_from_db()
    retention.save(update_fields=["status", "checked_at"])
    assert retention.history.count() == 2

    page = admin_client.get(reverse("admin:retention_retentionpolicy_change", args=[retention.pk]), follow=True)
    assert "managed from files" in page.content.decode()
    page = admin_client.get(reverse("admin:alerts_alertrule_history", args=[rule.pk]))
    assert page.status_code == 200 and "atlas apply" in page.content.decode()

    versions = latest_versions([retention, email, rule])
    assert versions == {
        f"retentionpolicy:{retention.pk}": retention.history.latest().history_id,
        f"columnpolicy:{email.pk}": email.history.latest().history_id,
        f"alertrule:{rule.pk}": rule.history.latest().history_id,
    }
