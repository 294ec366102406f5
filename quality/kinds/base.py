"""What a check kind is, what it compiles to, and the registry of kinds.

A kind is one class (:class:`Kind`) registered once (:func:`register`): it says
what it takes (``columns``, ``params``, ``validate``), what it measures in the
warehouse (``compile``: a :class:`RowCheck` counted in the scan, a
:class:`TableCheck` aggregated in the scan, or None for the catalogue), how a
measured value becomes an outcome (``outcome``, for table and catalogue kinds;
row kinds share the failing-share rule of :mod:`quality.service`), and the
sentence operators read (``describe``). Nothing else in ``quality`` branches on
a kind's name.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

import sqlglot
from sqlglot import exp

from atlas.sql.errors import SQLRefused
from atlas.sql.transpile import check_same_meaning
from atlas.sql.validate import DIALECT as OPERATOR_DIALECT
from atlas.warehouse import Warehouse

from ..definitions import dataset_columns, min_max, parse_condition
from ..models import Outcome, Severity

if TYPE_CHECKING:
    from ..models import Check

ALIAS = "s"  # the staged (checked) table's alias in every compiled statement

# How many columns a kind reads.
NO_COLUMNS, ONE_COLUMN, COLUMNS = "none", "one", "many"


class UnknownCheckKind(ValueError):
    """A check names a kind no class is registered for."""


@dataclass
class RowCheck:
    """A row check: SQL true for failing rows, the joins it needs, its bind parameters.

    ``count`` is set when the failing rows are not counted by a FILTER in the
    scan's aggregate but by another expression (a scalar subquery, a bitmap
    probe); with ``count_is_exact`` false it counts an upper bound of them
    (surplus rows; zero: passes) and ``exact`` counts the failing rows. A
    ``count`` that is NULL could not decide (a shortcut whose premise no longer
    held): ``exact`` counts then too.

    ``keys``: for a check over keys (uniqueness), the scalar subquery counting the
    keys that fail, as dbt and Soda count them (a failing check only), with its bind
    parameters ``keys_params``; ``keys_label`` names what it counts ("duplicated key"). ``drop_bad``
    and ``drop_joins``: when a drop check moves fewer rows than fail it (uniqueness
    keeps one row per key), the rows it moves; default ``bad`` and ``joins``.
    """

    check: Check
    bad: str
    params: list[Any] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    count: str | None = None
    count_params: list[Any] = field(default_factory=list)
    count_is_exact: bool = True
    exact: str | None = None
    keys: str | None = None
    keys_params: list[Any] = field(default_factory=list)
    keys_label: str = "duplicated key"
    drop_bad: str | None = None
    drop_joins: list[str] | None = None
    # the failing rows as one predicate needing no join, for the sample of a few (a LIMIT): the
    # referential check's NOT EXISTS probes the referenced key's index instead of a DISTINCT of its table
    sample_bad: str | None = None

    @property
    def moved(self) -> tuple[str, list[str]]:
        """The predicate of the rows a drop split moves for this check, and the joins it needs."""
        if self.drop_bad is None:
            return self.bad, self.joins
        return self.drop_bad, self.drop_joins or []

    def needs_exact(self, value: Any) -> bool:
        """Whether the scan's ``value`` for this check must be replaced by the ``exact`` count."""
        return self.exact is not None and (value is None or (bool(value) and not self.count_is_exact))

    def scan_item(self) -> tuple[str, list[Any]]:
        """The select-list item that counts this check's failing (or surplus) rows."""
        if self.count is not None:
            return self.count, list(self.count_params)
        return f"count(*) FILTER (WHERE {self.bad})", list(self.params)


@dataclass
class TableCheck:
    """A table check computed in the scan: one aggregate expression."""

    check: Check
    expr: str
    params: list[Any] = field(default_factory=list)


@dataclass
class Target:
    """Where a check is compiled for: the warehouse, the checked table, the check's position in the plan.

    ``types``: the table's column types by name (empty when not read);
    ``unique_against`` (schema, table): uniqueness also counts that table's keys (re-processing);
    ``against``: the same for rows that are no one table (an append's published rows and earlier
    batches, a merge's untouched rows), as a function of the key columns' list to a SELECT of them.
    """

    wh: Warehouse
    schema: str
    table: str
    index: int = 0
    types: dict[str, str] = field(default_factory=dict)
    unique_against: tuple[str, str] | None = None
    against: Callable[[str], str] | None = None

    def against_keys(self, keys: str) -> str | None:
        """A SELECT of ``keys`` (quoted column names) from the rows the checked rows join, or None."""
        if self.against is not None:
            return self.against(keys)
        if self.unique_against is not None:
            return f"SELECT {keys} FROM {self.wh.table(*self.unique_against)}"
        return None

    @property
    def source(self) -> str:
        return self.wh.table(self.schema, self.table)

    def col(self, name: str) -> str:
        """A column of the checked row."""
        return f"{ALIAS}.{self.wh.quote(name)}"

    def text(self, name: str) -> str:
        return self.wh.cast_text(self.col(name))


def qualify(wh: Warehouse, sql: str, target: Target | None = None) -> str:
    """An operator's expression (PostgreSQL dialect) for this engine, its columns bound to the staged row.

    With the checked table's column types (``target.types``) the expression keeps PostgreSQL's
    meaning on every engine, as a step's SELECT does (``atlas.sql.transpile``: ``amount / 100``
    on integer cents is integer division on DuckDB too).
    """
    if target is None or not target.types:
        return _qualified(wh, sql, "", "", ())
    return _qualified(wh, sql, target.schema, target.table, tuple(sorted(target.types.items())))


@lru_cache(maxsize=256)
def _qualified(wh: Warehouse, sql: str, schema: str, table: str, types: tuple[tuple[str, str], ...]) -> str:
    # parsing and transpiling is the costliest part of compiling a plan: once per warehouse and expression
    tree = sqlglot.parse_one(sql, read=OPERATOR_DIALECT)
    for column in tree.find_all(exp.Column):
        column.set("table", exp.to_identifier(ALIAS))
    if not types:
        return wh.transpile(tree.sql(OPERATOR_DIALECT))
    # Typed: transpile it as the one output of a SELECT over the table, then take it back out.
    select = exp.select(exp.alias_(tree, "_atlas_v")).from_(
        exp.Table(this=exp.to_identifier(table), db=exp.to_identifier(schema), alias=exp.TableAlias(this=exp.to_identifier(ALIAS)))
    )
    rendered = wh.transpile(select.sql(OPERATOR_DIALECT), {(schema, table): dict(types)})
    out = sqlglot.parse_one(rendered, read=wh.dialect).expressions[0]
    return (out.this if isinstance(out, exp.Alias) else out).sql(wh.dialect)


def violated(check: Check) -> str:
    """The outcome of a table check whose condition does not hold: by its severity."""
    return Outcome.FAIL if check.severity == Severity.FAIL else Outcome.WARN


def as_datetime(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def names(columns: list[str]) -> str:
    return ", ".join(columns)


def outside(expr: str, params: dict, *, inclusive: bool = True) -> tuple[str, list[Any]]:
    """SQL true when ``expr`` lies outside ``params``' [min, max] (either bound may be absent), and its values."""
    parts, values = [], []
    if params.get("min") is not None:
        parts.append(f"{expr} {'<' if inclusive else '<='} %s")
        values.append(params["min"])
    if params.get("max") is not None:
        parts.append(f"{expr} {'>' if inclusive else '>='} %s")
        values.append(params["max"])
    return "(" + " OR ".join(parts) + ")", values


def bounds_errors(check: Check, *, integer: bool) -> dict[str, str]:
    """Why ``check``'s ``min`` / ``max`` are not sound bounds (whole numbers of 0 or more with ``integer``)."""
    errors: dict[str, str] = {}
    min_max(check.params, integer=integer, errors=errors)
    return errors


def condition_errors(check: Check, *, aggregate: bool) -> dict[str, str]:
    """Why ``check``'s ``sql`` is not one read-only boolean condition over its dataset's columns.

    Also refused: what would not mean the same on every engine (``atlas.sql.transpile``),
    judged with the dataset's column types when they are known.
    """
    try:
        tree = parse_condition(check.params.get("sql", ""), aggregate=aggregate, columns=dataset_columns(check))
    except ValueError as exc:
        return {"params": str(exc)}
    types = dataset_types(check)
    layer, table = (check.dataset.layer, check.dataset.table) if check.dataset_id else ("chart", "t")
    select = exp.select(exp.alias_(tree.copy(), "_atlas_v")).from_(exp.table_(table, db=layer))
    try:
        check_same_meaning(select, {(layer, table): types} if types else None, types_known=bool(types))
    except SQLRefused as exc:
        return {"params": str(exc)}
    return {}


def dataset_types(check: Check) -> dict[str, str]:
    """The checked dataset's column types as Atlas recorded them (empty when unknown)."""
    if not check.dataset_id:
        return {}
    return {name: typ for name, typ in check.dataset.columns.values_list("name", "data_type") if typ}


class Kind(abc.ABC):
    """One kind of check. Subclass, set ``name`` (a ``CheckKind`` value), and :func:`register` it."""

    name: ClassVar[str]
    # Judges single rows: counts failing rows, may have a tolerance, may drop them to quarantine.
    row_level: ClassVar[bool] = False
    # How many columns it reads: NO_COLUMNS, ONE_COLUMN or COLUMNS (one or more).
    columns: ClassVar[str] = NO_COLUMNS
    # The keys ``Check.params`` may hold.
    params: ClassVar[frozenset[str]] = frozenset()

    def validate(self, check: Check) -> dict[str, str]:
        """Errors by field in what is particular to this kind (its params); empty when sound."""
        return {}

    def needs_types(self, check: Check, wh: Warehouse) -> bool:
        """Whether compiling needs the table's column types (one catalogue query per plan)."""
        return False

    def reads(self, check: Check) -> frozenset[str]:
        """Names of the other datasets the check reads: its step runs after their producers."""
        return frozenset()

    @abc.abstractmethod
    def compile(self, check: Check, target: Target) -> RowCheck | TableCheck | None:
        """What the scan computes for ``check``; None: the check reads the catalogue, not the rows."""

    def outcome(self, check: Check, value: Any, total: int, now: datetime) -> tuple[str, Any, str]:
        """``(outcome, observed, message)`` from the value the scan (or the catalogue) gave.

        Table and catalogue kinds override it; a row kind has no such outcome (its failing
        rows are counted and judged by ``service._row_outcome``), so asking for one is a
        programming error.
        """
        if self.row_level:
            raise TypeError(f"A {self.name} check is judged by its failing rows, not by one value.")
        raise TypeError(f"{type(self).__name__} is a table kind and must define outcome().")

    @abc.abstractmethod
    def describe(self, check: Check) -> str:
        """The rule in one sentence, as the admin shows it."""


REGISTRY: dict[str, Kind] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Register a kind class (a decorator); a name registered twice is a programming error."""
    if not getattr(cls, "name", ""):
        raise TypeError(f"{cls.__name__} has no name.")
    if cls.name in REGISTRY and type(REGISTRY[cls.name]) is not cls:
        raise TypeError(f"The check kind {cls.name!r} is registered twice ({type(REGISTRY[cls.name]).__name__}, {cls.__name__}).")
    REGISTRY[cls.name] = cls()
    return cls


def get_kind(name: str) -> Kind:
    """The registered kind called ``name``; :class:`UnknownCheckKind` (a ValueError) if there is none."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownCheckKind(
            f"Unknown check kind {name!r}; the kinds are: {', '.join(sorted(REGISTRY))}."
        ) from None
