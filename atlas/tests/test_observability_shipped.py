"""The dashboard and alert rules that ship in deploy/ (issue 17): valid, and about metrics Atlas exports.

A panel or rule naming a metric Atlas does not export shows nothing and never fires;
that is the failure this guards against. Names are read with a real PromQL parser
(promql-parser), rules and configuration are checked with ``promtool`` (Debian's
prometheus package: .ci/run installs it; locally the promtool tests skip with the reason).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

from conftest import IN_CI

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "atlas.json"
# Series Prometheus makes itself for every scrape target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _selectors(node) -> set[str]:
    """Every metric name a parsed PromQL expression selects."""
    names: set[str] = set()
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            names.add(node.name)
        return names
    for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            names |= _selectors(child)
    for child in getattr(node, "args", None) or []:
        names |= _selectors(child)
    return names


def metric_names(expr: str) -> set[str]:
    return _selectors(promql_parser.parse(expr))


def _rule_exprs() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def _panel_exprs() -> dict[str, list[str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in dashboard["panels"]}


def exported_names() -> set[str]:
    """Every series name Atlas's /metrics and a worker's exporter can give, with type suffixes."""
    from django_prometheus.middleware import Metrics
    from prometheus_client import REGISTRY

    from atlas.metrics import atlas_registry

    Metrics.get_instance()  # django-prometheus registers its request metrics on first use

    names: set[str] = set()
    for registry in (atlas_registry, REGISTRY):
        for family in registry.collect():
            base = family.name
            names.add(base)
            if family.type == "counter":
                names |= {f"{base}_total", f"{base}_created"}
            elif family.type in ("histogram", "summary"):
                names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
            names |= {s.name for s in family.samples}
    return names


def test_the_metric_name_reader_finds_every_selector():
    assert metric_names('sum by (a) (rate(x_total[5m])) / on (a) y > 3 or vector(0)') == {"x_total", "y"}
    assert metric_names('histogram_quantile(0.9, sum by (le) (rate(h_bucket[1h])))') == {"h_bucket"}
    assert metric_names('absent(up{job="w"} == 1)') == {"up"}


@pytest.mark.django_db
def test_every_alert_rule_names_only_metrics_atlas_exports():
    exported = exported_names() | PROMETHEUS_OWN
    unknown = {alert: sorted(metric_names(expr) - exported) for alert, expr in _rule_exprs().items()}
    assert {a: u for a, u in unknown.items() if u} == {}


@pytest.mark.django_db
def test_every_dashboard_panel_names_only_metrics_atlas_exports():
    exported = exported_names() | PROMETHEUS_OWN
    unknown = {
        title: sorted(set().union(*(metric_names(e) for e in exprs)) - exported)
        for title, exprs in _panel_exprs().items()
    }
    assert {t: u for t, u in unknown.items() if u} == {}


def test_the_dashboard_covers_what_an_operator_watches():
    text = " ".join(" ".join(e) for e in _panel_exprs().values())
    for metric in (
        "atlas_pipeline_runs_total",  # runs and failures over time
        "atlas_step_duration_seconds_bucket",  # step durations
        "atlas_rows_processed_total",  # rows
        "atlas_check_results_total",  # check outcomes
        "atlas_pii_findings",  # findings awaiting review
        "atlas_subject_requests_open",  # data-subject requests due
        "atlas_lineage_outbox_backlog",  # lineage backlog
    ):
        assert metric in text, metric


def test_the_alert_rules_cover_the_failures_an_operator_is_paged_for():
    assert {
        "AtlasPipelineFailing",
        "AtlasRunStuck",
        "AtlasFreshnessBreached",
        "AtlasLineageBacklog",
        "AtlasWorkerAbsent",
    } <= set(_rule_exprs())


def _promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    if IN_CI:
        pytest.fail("promtool is missing; .ci/run installs Debian's prometheus package.")
    pytest.skip("promtool is not installed (Debian package prometheus); the rules are not checked by it here.")


def test_promtool_accepts_the_alert_rules():
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_configuration(tmp_path):
    token = tmp_path / "token"
    token.write_text("scrape-token\n")
    config = CONFIG.read_text().replace("/run/secrets/atlas_metrics_token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(RULES, tmp_path / "alerts.yml")
    result = subprocess.run(
        [_promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_observability_profile_mounts_what_ships():
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    services = compose["services"]
    root = DEPLOY.parent
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (root / source).is_dir(), volume
    assert (root / "deploy/prometheus/prometheus.yml").is_file()
    assert "atlas_metrics_token" in compose["secrets"]
    worker = services["worker"]["environment"]
    assert worker["ATLAS_WORKER_METRICS_PORT"] == "9808"  # what prometheus.yml scrapes
    assert "port: 9808" in CONFIG.read_text()
