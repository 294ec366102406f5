"""Alerts' definitions as code (``atlas.definitions``): notification rules (``alert_rules.yml``).

A rule's secrets are references only (``env:NAME`` for a Slack URL or a webhook's
Authorization header); the rule's own validation refuses a secret written in clear.
"""

from __future__ import annotations

from atlas.definitions.specs import Kind

from .models import AlertRule

KINDS = [Kind("alert_rules", AlertRule, refs={"pipeline": "pipelines"}, order=50)]
