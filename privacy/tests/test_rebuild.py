"""The rebuild after an erasure runs through the runner: its run starts, with every hook, like any run."""

from __future__ import annotations

from lineage import events
from lineage.models import OutboxEvent
from pipelines.models import PipelineRun
from privacy import service
from privacy.models import ErasureRecord


def test_a_rebuild_emits_the_run_start_of_the_parent_run_its_step_events_name(shop, wh):
    req = service.submit("erasure", {"email": ["ann@example.com"]})
    req = service.run(service.verify(req))
    assert req.status == "completed", (req.error, req.residue)
    run = PipelineRun.objects.get(pk=req.erasures.get(method=ErasureRecord.Method.REBUILD).run_id)
    parent = events.pipeline_run_uuid(run)
    step_events = OutboxEvent.objects.filter(step_run__run=run).order_by("id")
    assert [e.event_type for e in step_events] == ["START", "COMPLETE"]
    assert {e.payload["run"]["facets"]["parent"]["run"]["runId"] for e in step_events} == {parent}
    # The parent run the step events name has started, and ended, in the outbox: before and after its steps.
    own = list(OutboxEvent.objects.filter(run_uuid=parent).order_by("id").values_list("event_type", "id"))
    assert [t for t, _ in own] == ["START", "COMPLETE"]
    assert own[0][1] < step_events.first().pk and own[1][1] > step_events.last().pk
