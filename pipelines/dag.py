"""Step order from data: a step runs after the steps that produce what it reads."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


class PipelineDefinitionError(Exception):
    """The steps cannot be ordered (a cycle) or read data nobody produces."""


class PipelineCycleError(PipelineDefinitionError):
    """The steps form a cycle (through their SQL, or the datasets their checks read)."""


@dataclass(frozen=True)
class StepSpec:
    key: object  # anything that identifies the step (pk, form prefix)
    name: str
    output: int  # dataset id
    inputs: frozenset[int] = field(default_factory=frozenset)
    # Datasets the step's checks read (a referential check's other dataset): the step runs
    # after their producer, but a dataset no step produces is no error (the check says so).
    after: frozenset[int] = field(default_factory=frozenset)


def plan(steps: Sequence[StepSpec], *, produced_elsewhere: Iterable[int] = (), names: dict[int, str] | None = None) -> list[StepSpec]:
    """Topological order, stable in the given order; refuse cycles and orphan inputs.

    ``graphlib`` orders; ties keep the declared order: every step whose inputs
    are ready runs in the order it was declared, before the steps that read it.
    ``produced_elsewhere``: datasets that steps of other pipelines produce (a
    pipeline may read another pipeline's tables; it does not wait for them).
    """
    names = names or {}
    label = lambda ds: names.get(ds, f"dataset #{ds}")  # noqa: E731
    producer: dict[int, int] = {}  # dataset id -> index of the step writing it
    for i, spec in enumerate(steps):
        if spec.output in producer:
            raise PipelineDefinitionError(
                f"Steps {steps[producer[spec.output]].name!r} and {spec.name!r} both write {label(spec.output)}."
            )
        producer[spec.output] = i
    elsewhere = set(produced_elsewhere)
    for spec in steps:
        for ds in sorted(spec.inputs):
            if ds not in producer and ds not in elsewhere:
                raise PipelineDefinitionError(
                    f"Step {spec.name!r} reads {label(ds)}, which no step produces."
                )
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for i, spec in enumerate(steps):
        # A step may read its own output (append, merge): that is no dependency.
        sorter.add(i, *sorted(producer[ds] for ds in (spec.inputs | spec.after) - {spec.output} if ds in producer))
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        loop = exc.args[1]
        raise PipelineCycleError(
            f"The steps form a cycle: {_cycle_text(steps, loop)}.{_check_edges(steps, loop, label)}"
        ) from exc
    ordered: list[StepSpec] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered.extend(steps[i] for i in ready)
        sorter.done(*ready)
    return ordered


def _check_edges(steps: Sequence[StepSpec], cycle: list[int], label) -> str:
    """`` Checks make part of it: ...``: the links of the cycle that only a check's read makes."""
    notes = []
    loop = cycle[:-1]
    for k, i in enumerate(loop):
        # graphlib lists a cycle in data order: each step feeds the next.
        feeder, reader = steps[i], steps[loop[(k + 1) % len(loop)]]
        if feeder.output in reader.after and feeder.output not in reader.inputs:
            notes.append(f"a check on {label(reader.output)} (step {reader.name!r}) reads {label(feeder.output)}")
    return f" Checks make part of it: {'; '.join(notes)}." if notes else ""


def _cycle_text(steps: Sequence[StepSpec], cycle: list[int]) -> str:
    """``a -> b``: the steps of the cycle in data order (each feeds the next), from the one declared first."""
    loop = cycle[:-1]  # graphlib names the first step again at the end
    start = loop.index(min(loop))
    return " -> ".join(steps[i].name for i in loop[start:] + loop[:start])
