"""Which steps a run executes, chosen as dbt users choose models: ``--select +customers``.

A selection is a list of selectors; the steps of any of them run (a union, like dbt's spaces).
A selector joins one or more *atoms* with commas; a step must match every atom (an intersection,
like dbt's commas). An atom is:

* a name: the step's name, its output dataset's name, its table (``customers``) or qualified
  table (``chart.customers``);
* ``tag:NAME``: the steps carrying that tag;
* ``*``: every step;

with graph operators on either side: ``+name`` adds everything upstream of it, ``name+``
everything downstream, ``2+name`` / ``name+1`` at most that many steps away. Upstream and
downstream follow the run's own edges: what a step's SQL reads and what its checks read.

``exclude`` selectors remove steps afterwards. A name that matches no step, or a selection
that leaves no step, is refused with the names that would have matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .models import Pipeline, Step

ATOM_RE = re.compile(r"^(?:(?P<up>\d*)\+)?(?P<body>tag:[A-Za-z0-9_.-]+|\*|[A-Za-z0-9_.-]+)(?:\+(?P<down>\d*))?$")


class SelectionError(ValueError):
    """A selector does not parse, names nothing, or the selection is empty; the message says which."""


@dataclass(frozen=True)
class Atom:
    body: str
    up: int | None = None  # steps upstream to add: None none, -1 all, n at most n away
    down: int | None = None

    @classmethod
    def parse(cls, text: str) -> Atom:
        m = ATOM_RE.match(text)
        if not m:
            raise SelectionError(
                f"Cannot read the selector {text!r}: use a step or dataset name, tag:NAME or *,"
                " with + before (upstream) or after (downstream), e.g. +customers, orders+, 2+orders."
            )

        def depth(group: str | None) -> int | None:
            if group is None:
                return None
            return int(group) if group else -1

        return cls(m["body"], up=depth(m["up"]), down=depth(m["down"]))


def parse(selectors: Iterable[str]) -> list[list[Atom]]:
    """``["+customers orders+", "tag:daily,chart.x"]`` -> selectors (union) of atoms (intersection)."""
    out = []
    for text in selectors:
        for selector in text.split():
            out.append([Atom.parse(atom) for atom in selector.split(",") if atom])
    return out


def select_steps(pipeline: Pipeline, select: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[int] | None:
    """The ids of the steps to run, in no particular order; None when nothing restricts the run."""
    chosen, removed = parse(select), parse(exclude)
    if not chosen and not removed:
        return None
    from .runner import upstream_steps  # the runner's own edges (SQL and checks)

    steps = list(pipeline.steps.select_related("output"))
    up = upstream_steps(steps)
    down: dict[int, set[int]] = {}
    for step, producers in up.items():
        for producer in producers:
            down.setdefault(producer, set()).add(step)
    graph = _Graph(steps, up, down)
    ids = set().union(*(graph.match_all(sel) for sel in chosen)) if chosen else {s.pk for s in steps}
    ids -= set().union(*(graph.match_all(sel) for sel in removed)) if removed else set()
    if not ids:
        raise SelectionError(f"The selection leaves no step of pipeline {pipeline.name!r} to run.")
    return sorted(ids)


class _Graph:
    def __init__(self, steps: list[Step], up: dict[int, set[int]], down: dict[int, set[int]]) -> None:
        self.steps, self.up, self.down = steps, up, down

    def match_all(self, atoms: list[Atom]) -> set[int]:
        found = [self.match(atom) for atom in atoms]
        return set.intersection(*found) if found else set()

    def match(self, atom: Atom) -> set[int]:
        base = {s.pk for s in self.steps if _matches(s, atom.body)}
        if not base:
            raise SelectionError(
                f"{atom.body!r} matches no step (steps: {', '.join(s.name for s in self.steps) or 'none'};"
                f" tables: {', '.join(s.output.qualified_table for s in self.steps) or 'none'};"
                f" tags: {', '.join(_all_tags(self.steps)) or 'none'})."
            )
        out = set(base)
        if atom.up is not None:
            out |= _reach(base, self.up, atom.up)
        if atom.down is not None:
            out |= _reach(base, self.down, atom.down)
        return out


def _matches(step: Step, body: str) -> bool:
    if body == "*":
        return True
    if body.startswith("tag:"):
        return body[4:] in (step.tags or [])
    out = step.output
    return body in (step.name, out.name, out.table, out.qualified_table)


def _all_tags(steps: list[Step]) -> list[str]:
    return sorted({t for s in steps for t in (s.tags or [])})


def _reach(start: set[int], edges: dict[int, set[int]], depth: int) -> set[int]:
    """Every step reachable from ``start`` along ``edges``, at most ``depth`` away (-1: no limit)."""
    seen, frontier, level = set(), set(start), 0
    while frontier and (depth < 0 or level < depth):
        frontier = {n for s in frontier for n in edges.get(s, ())} - seen - start
        seen |= frontier
        level += 1
    return seen
