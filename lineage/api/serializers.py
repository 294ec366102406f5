"""Shapes of the lineage API's answers, for the OpenAPI schema (the graph is built by lineage.graph)."""

from __future__ import annotations

from rest_framework import serializers


class ReceivedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The stored event (admin: Received OpenLineage events).")
    eventType = serializers.CharField(allow_blank=True)  # noqa: N815 - OpenLineage's name


class RootSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    namespace = serializers.CharField()
    name = serializers.CharField()


class LastRunSerializer(serializers.Serializer):
    status = serializers.CharField()
    finished_at = serializers.DateTimeField(allow_null=True)
    run_id = serializers.IntegerField(allow_null=True)


class ColumnSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.CharField(allow_blank=True)
    pii = serializers.ListField(child=serializers.CharField(), help_text="Clear PII entities this column carries.")
    pii_flagged = serializers.CharField(allow_null=True, help_text="The entity compliance flagged on this very column.")
    pii_protected = serializers.BooleanField(help_text="A policy (not keep) protects this very column.")
    pii_entities = serializers.ListField(
        child=serializers.CharField(), help_text="PII entities this column holds or derives from, protected or not."
    )
    pii_protection = serializers.CharField(
        allow_null=True,
        help_text="How its PII is protected: the policy's action (hash, mask, redact, generalise, drop,"
        " anonymise_text; keep: in clear with a reason), unprotected (clear, no policy), upstream (protected"
        " before it); null when it holds no PII.",
    )
    pii_awaiting_review = serializers.BooleanField(
        help_text="Its policy is applied by default (privacy by default) until a steward reviews the finding."
    )
    in_lineage = serializers.BooleanField(help_text="Feeds, or is fed by, the root dataset's columns.")


class NodeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    origin = serializers.ChoiceField(choices=["atlas", "source", "external"])
    side = serializers.ChoiceField(choices=["root", "upstream", "downstream"])
    depth = serializers.IntegerField(help_text="Hops from the root: negative upstream, positive downstream.")
    dataset_id = serializers.IntegerField(allow_null=True)
    dataset = serializers.CharField(allow_null=True)
    url = serializers.CharField(allow_null=True)
    lineage_url = serializers.CharField()
    last_run = LastRunSerializer(allow_null=True)
    columns = ColumnSerializer(many=True)


class EdgeSerializer(serializers.Serializer):
    source = serializers.IntegerField()
    target = serializers.IntegerField()
    jobs = serializers.ListField(child=serializers.CharField())


class ColumnEdgeSerializer(serializers.Serializer):
    source = serializers.IntegerField()
    target = serializers.IntegerField(help_text="A column, or a dataset for dataset-wide INDIRECT lineage.")
    type = serializers.ChoiceField(choices=["DIRECT", "INDIRECT"])
    subtype = serializers.CharField(allow_blank=True)
    masking = serializers.BooleanField()


class GraphSerializer(serializers.Serializer):
    root = RootSerializer()
    direction = serializers.ChoiceField(choices=["upstream", "downstream", "both"])
    depth = serializers.IntegerField()
    nodes = NodeSerializer(many=True)
    edges = EdgeSerializer(many=True)
    column_edges = ColumnEdgeSerializer(many=True)
