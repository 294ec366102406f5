"""Step order from data: a step runs after the steps that produce what it reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


class PipelineDefinitionError(Exception):
    """The steps cannot be ordered (a cycle) or read data nobody produces."""


@dataclass(frozen=True)
class StepSpec:
    key: object  # anything that identifies the step (pk, form prefix)
    name: str
    output: int  # dataset id
    inputs: frozenset[int] = field(default_factory=frozenset)


def plan(steps: Sequence[StepSpec], *, produced_elsewhere: Iterable[int] = (), names: dict[int, str] | None = None) -> list[StepSpec]:
    """Topological order, stable in the given order; refuse cycles and orphan inputs.

    ``produced_elsewhere``: datasets that steps of other pipelines produce (a
    pipeline may read another pipeline's tables; it does not wait for them).
    """
    names = names or {}
    label = lambda ds: names.get(ds, f"dataset #{ds}")  # noqa: E731
    producer: dict[int, StepSpec] = {}
    for spec in steps:
        if spec.output in producer:
            raise PipelineDefinitionError(
                f"Steps {producer[spec.output].name!r} and {spec.name!r} both write {label(spec.output)}."
            )
        producer[spec.output] = spec
    elsewhere = set(produced_elsewhere)
    for spec in steps:
        for ds in sorted(spec.inputs):
            if ds not in producer and ds not in elsewhere:
                raise PipelineDefinitionError(
                    f"Step {spec.name!r} reads {label(ds)}, which no step produces."
                )
    remaining = list(steps)
    done: set[int] = set()
    ordered: list[StepSpec] = []
    while remaining:
        ready = [s for s in remaining if all(ds in done or ds not in producer for ds in s.inputs - {s.output})]
        if not ready:
            cycle = " -> ".join(s.name for s in remaining)
            raise PipelineDefinitionError(f"The steps form a cycle: {cycle}.")
        for spec in ready:
            ordered.append(spec)
            done.add(spec.output)
            remaining.remove(spec)
    return ordered
