"""OpenLineage RunEvents for Atlas's step runs, and validation against the official schema.

Events are built with openlineage-python (its generated classes follow the
spec) and turned into plain JSON for the outbox. Validation uses the official
JSON Schema (``lineage/spec``, a copy of OpenLineage's ``spec/``), every
``$ref`` resolved offline by ``$id``: the base event and each facet that names
its own ``_schemaURL``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from atlas.scrub import scrub, scrub_traceback
from pipelines.models import PipelineRun, Step, StepRun

from . import graph
from .models import LineageNode

if TYPE_CHECKING:
    from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset
    from referencing import Registry

# The OpenLineage client (~0.4 s) and jsonschema with its format checkers (~2.5 s: rfc3987-syntax
# builds its grammars on import) are imported where an event is built or checked, never at start:
# every command and web process loads this module through the URLconf and the step hooks.

SPEC_DIR = Path(__file__).resolve().parent / "spec"
PRODUCER = "https://github.com/atlas-data/atlas/tree/main/lineage"
# Atlas's own facets (JSON Schemas beside the spec's, checked with them): a step's Spark job facts.
FACETS_DIR = Path(__file__).resolve().parent / "facets"
SPARK_FACET = "atlas_spark"
SPARK_FACET_SCHEMA = f"{PRODUCER}/facets/AtlasSparkRunFacet.json#/$defs/AtlasSparkRunFacet"
ENGINE_VERSION = "0.1.0"


class InvalidEvent(ValueError):
    """An OpenLineage event that does not follow the schema; ``errors`` lists where and why."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("Invalid OpenLineage event: " + "; ".join(errors[:5]))


# --- ids and times -------------------------------------------------------------------
def _run_uuid(kind: str, pk: int, created: datetime) -> str:
    """A stable UUID for an Atlas run: the same run always gets the same id, and no other does."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"atlas://{graph.namespace()}/{kind}/{pk}/{created.isoformat()}"))


def pipeline_run_uuid(run: PipelineRun) -> str:
    return _run_uuid("pipeline-run", run.pk, run.created_at)


def step_run_uuid(step_run: StepRun) -> str:
    return _run_uuid("step-run", step_run.pk, step_run.run.created_at)


def _iso(moment: datetime | None) -> str:
    return (moment or timezone.now()).astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- datasets ------------------------------------------------------------------------
def _schema_facet(node: LineageNode) -> schema_dataset.SchemaDatasetFacet:
    from openlineage.client.facet_v2 import schema_dataset

    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name=c.column, type=c.data_type or None, ordinal_position=i + 1)
            for i, c in enumerate(node.children.order_by("position", "column"))
        ]
    )


def _input_field(node: LineageNode, typ: str, sub: str, masking: bool = False) -> column_lineage_dataset.InputField:
    from openlineage.client.facet_v2 import column_lineage_dataset

    return column_lineage_dataset.InputField(
        namespace=node.namespace,
        name=node.name,
        field=node.column,
        transformations=[column_lineage_dataset.Transformation(type=typ, subtype=sub or None, masking=masking)],
    )


def column_lineage_facet(result: graph.StepLineage) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """The columnLineage facet of a step's output, from what :func:`graph.refresh_step` traced."""
    from openlineage.client.facet_v2 import column_lineage_dataset

    fields = {
        name: column_lineage_dataset.Fields(
            inputFields=[_input_field(n, t, s, masking=name in result.masked and t == "DIRECT") for n, t, s in relations]
        )
        for name, relations in result.fields.items()
    }
    dataset = [_input_field(n, "INDIRECT", s) for n, s in result.dataset]
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, dataset=dataset)


# --- events --------------------------------------------------------------------------
def step_event(
    event_type: str,
    step_run: StepRun,
    *,
    step: Step,
    lineage: graph.StepLineage | None = None,
    sql: str | None = None,
    error: BaseException | str | None = None,
    traceback: str = "",
    assertions: list[dict[str, Any]] | None = None,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One RunEvent (START, COMPLETE or FAIL) of a step run, as a JSON-ready dict.

    ``engine``: what the warehouse engine ran for the step (``Warehouse.take_job_facts``; Spark's
    application, operations, stages, bytes read and written), as run facets and output statistics.
    """
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset,
        error_message_run,
        external_query_run,
        job_type_job,
        nominal_time_run,
        output_statistics_output_dataset,
        parent_run,
        processing_engine_run,
        sql_job,
    )
    from openlineage.client.serde import Serde

    run = step_run.run
    pipeline = step.pipeline
    run_facets: dict[str, Any] = {
        "nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=_iso(run.created_at)),
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=pipeline_run_uuid(run)),
            job=parent_run.Job(namespace=graph.namespace(), name=pipeline.name),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=pipeline_run_uuid(run)),
                job=parent_run.RootJob(namespace=graph.namespace(), name=pipeline.name),
            ),
        ),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=ENGINE_VERSION, name="Atlas", openlineageAdapterVersion=_client_version()
        ),
    }
    if error:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=scrub(error), programmingLanguage="python", stackTrace=scrub_traceback(traceback) or None
        )
    engine = engine or {}
    application = engine.get("application") or {}
    if application.get("applicationId"):
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=application["applicationId"], source="spark"
        )
    job_facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="ATLAS", jobType=step.kind.upper()),
    }
    query = sql or step_run.sql or step.sql
    if query:
        job_facets["sql"] = sql_job.SQLJobFacet(query=query, dialect="postgres")
    inputs, outputs = [], []
    if lineage is not None:
        inputs = [
            InputDataset(namespace=n.namespace, name=n.name, facets={"schema": _schema_facet(n)}) for n in lineage.inputs
        ]
        out = lineage.output
        if out is not None:
            facets: dict[str, Any] = {"schema": _schema_facet(out)}
            output_facets: dict[str, Any] = {}
            if assertions:
                facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=[data_quality_assertions_dataset.Assertion(**a) for a in assertions]
                )
            if event_type == RunState.COMPLETE.value:
                if lineage.fields or lineage.dataset:
                    facets["columnLineage"] = column_lineage_facet(lineage)
                written = engine.get("output") or {}
                output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=step_run.rows_out, size=written.get("bytes"), fileCount=written.get("files")
                )
            outputs = [OutputDataset(namespace=out.namespace, name=out.name, facets=facets, outputFacets=output_facets)]
    event = RunEvent(
        eventType=RunState(event_type),
        eventTime=_iso(timezone.now()),
        run=Run(runId=step_run_uuid(step_run), facets=run_facets),
        job=Job(namespace=graph.namespace(), name=graph.job_name(step), facets=job_facets),
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )
    payload = json.loads(Serde.to_json(event))
    if application:
        payload["run"]["facets"][SPARK_FACET] = spark_facet(engine)
    return payload


def spark_facet(engine: dict[str, Any]) -> dict[str, Any]:
    """The ``atlas_spark`` run facet (``lineage/facets/AtlasSparkRunFacet.json``): the Spark job facts of a step run."""
    facet: dict[str, Any] = {"_producer": PRODUCER, "_schemaURL": SPARK_FACET_SCHEMA, **engine["application"]}
    for key in ("operations", "operationIds", "stages", "tasks", "bytesRead"):
        if key in engine:
            facet[key] = engine[key]
    return facet


def pipeline_event(event_type: str, run: PipelineRun, *, error: str = "", traceback: str = "") -> dict[str, Any]:
    """One RunEvent of a pipeline run: the parent of its step runs' events (their ``parent`` facet names it)."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import (
        error_message_run,
        job_type_job,
        nominal_time_run,
        processing_engine_run,
    )
    from openlineage.client.serde import Serde

    run_facets: dict[str, Any] = {
        "nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=_iso(run.created_at)),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=ENGINE_VERSION, name="Atlas", openlineageAdapterVersion=_client_version()
        ),
    }
    if error:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=scrub(error), programmingLanguage="python", stackTrace=scrub_traceback(traceback) or None
        )
    job_facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="ATLAS", jobType="PIPELINE"),
    }
    event = RunEvent(
        eventType=RunState(event_type),
        eventTime=_iso(timezone.now()),
        run=Run(runId=pipeline_run_uuid(run), facets=run_facets),
        job=Job(namespace=graph.namespace(), name=run.pipeline.name, facets=job_facets),
        inputs=[],
        outputs=[],
        producer=PRODUCER,
    )
    return json.loads(Serde.to_json(event))


def contributed_assertions(step_run: StepRun) -> list[dict[str, Any]]:
    """What the step run asserted about its output (quality's checks, ...), from the apps that contribute
    ``lineage_assertions`` (:mod:`atlas.extensions`): OpenLineage data-quality assertion dicts."""
    from atlas import extensions

    return [a for source in extensions.contributions("lineage_assertions") for a in source(step_run)]


@lru_cache(maxsize=1)
def _client_version() -> str:
    from importlib.metadata import version

    return version("openlineage-python")


# --- validation ----------------------------------------------------------------------
@lru_cache(maxsize=4)
def _registry(spec_dir: str) -> tuple[Registry, dict[str, dict]]:
    """Every schema of the spec directory, by ``$id``; and facet schemas by their file stem."""
    from referencing import Registry, Resource

    root = Path(spec_dir)
    if not (root / "OpenLineage.json").is_file():
        raise FileNotFoundError(f"The OpenLineage schema is missing: {root / 'OpenLineage.json'}")
    resources, by_id = [], {}
    for path in [root / "OpenLineage.json", *sorted((root / "facets").glob("*.json")), *sorted(FACETS_DIR.glob("*.json"))]:
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
        by_id[contents["$id"]] = contents
    return Registry().with_resources(resources), by_id


def _facet_schemas(payload: dict) -> list[tuple[str, Any, str]]:
    """Each facet of the event with the schema it names (``_schemaURL``) and where it sits."""
    found = []

    def collect(facets: Any, where: str) -> None:
        if isinstance(facets, dict):
            for key, facet in facets.items():
                if isinstance(facet, dict) and isinstance(facet.get("_schemaURL"), str):
                    found.append((facet["_schemaURL"], facet, f"{where}.{key}"))

    collect(payload.get("run", {}).get("facets"), "run.facets")
    collect(payload.get("job", {}).get("facets"), "job.facets")
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, ds in enumerate(payload.get(side) or []):
            if isinstance(ds, dict):
                collect(ds.get("facets"), f"{side}[{i}].facets")
                collect(ds.get(extra), f"{side}[{i}].{extra}")
    return found


def validation_errors(payload: Any, spec_dir: Path | str | None = None) -> list[str]:
    """Why ``payload`` is not a valid OpenLineage event (empty when it is).

    The base schema checks the event; each facet whose ``_schemaURL`` names a
    schema of the spec is checked against that facet definition too.
    """
    from jsonschema import Draft202012Validator

    registry, by_id = _registry(str(spec_dir or SPEC_DIR))
    base_id = next(i for i in by_id if i.endswith("/OpenLineage.json"))
    # The spec's root is oneOf(RunEvent, DatasetEvent, JobEvent): check the one the event claims to be,
    # so the errors say what is wrong rather than "not valid under any of the given schemas".
    kind = "RunEvent"
    if isinstance(payload, dict) and "run" not in payload and "eventType" not in payload:
        kind = "DatasetEvent" if "dataset" in payload else "JobEvent" if "job" in payload else "RunEvent"
    validator = Draft202012Validator(
        {"$ref": f"{base_id}#/$defs/{kind}"}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(event)'}: {_said(e)}"
        for e in sorted(validator.iter_errors(payload), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if errors or not isinstance(payload, dict):
        return errors
    for url, facet, where in _facet_schemas(payload):
        doc_id, _, fragment = url.partition("#")
        stem = Path(doc_id).stem
        if doc_id not in by_id:
            # Another version of a standard facet: check it against the version we hold.
            same = [i for i in by_id if Path(i).stem == stem]
            if not same:
                continue  # a custom facet: the base schema has checked its shape
            doc_id, fragment = same[0], ""
        ref = f"{doc_id}#{fragment}" if fragment else f"{doc_id}#/$defs/{stem}"
        validator = Draft202012Validator({"$ref": ref}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors.extend(f"{where}/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(facet))
    return errors


def validate(payload: Any, spec_dir: Path | str | None = None) -> None:
    errors = validation_errors(payload, spec_dir)
    if errors:
        raise InvalidEvent(errors)


def _said(error) -> str:
    """A schema error in words whose only quotes are the sender's own values (kept by the API's scrubber)."""
    if error.validator == "format":
        return f"{error.instance!r} is not a valid {error.validator_value}"
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        return f"the required property {', '.join(missing) or error.validator_value[0]} is missing"
    return error.message

