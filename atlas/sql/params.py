"""Run parameters in operator SQL: ``:name`` placeholders, allowlisted, bound by the driver.

A step's SELECT may refer to the run's data interval as named placeholders
(``WHERE ts >= :data_interval_start AND ts < :data_interval_end``). They are
parsed by sqlglot as ``exp.Placeholder`` nodes, refused unless their name is on
:data:`RUN_PARAMETERS`, and never formatted into the text: :func:`render`
turns each into the driver's own placeholder (psycopg ``%(name)s``, DuckDB
``$name``), and the values travel beside the SQL, typed as timestamps with
time zone (``CAST(:name AS TIMESTAMPTZ)``, the same on both engines).

A SELECT without placeholders is never touched: :func:`render` returns its
text as it came.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from .errors import SQLRefused

# The names a step's SQL may use, and what each holds (shown in messages and docs).
RUN_PARAMETERS: dict[str, str] = {
    "data_interval_start": "the start of the run's data interval (included)",
    "data_interval_end": "the end of the run's data interval (excluded)",
    "logical_date": "the run's logical date (the start of its interval for scheduled and backfill runs)",
}
PARAMETER_TYPE = "TIMESTAMPTZ"


def _name(node: exp.Placeholder) -> str | None:
    this = node.this
    if isinstance(this, exp.Identifier):
        return this.name
    return this if isinstance(this, str) and this else None


def allowed_list() -> str:
    return ", ".join(f":{n}" for n in RUN_PARAMETERS)


def check_parameters(root: exp.Expression) -> list[str]:
    """The parameter names ``root`` uses (in order, once each); refuses unknown and unnamed ones."""
    names: list[str] = []
    for node in root.find_all(exp.Placeholder):
        name = _name(node)
        if name is None:
            raise SQLRefused(
                f"Positional parameters (?, $1, %s) are not allowed; name a run parameter: {allowed_list()}."
            )
        if name.isdigit():
            raise SQLRefused(f"Positional parameter ${name} is not allowed; name a run parameter: {allowed_list()}.")
        if name.lower() not in RUN_PARAMETERS:
            raise SQLRefused(f"Unknown parameter :{name}; the run parameters are {allowed_list()}.")
        if name.lower() not in names:
            names.append(name.lower())
    return names


def uses_parameters(sql: str, dialect: str = "postgres") -> bool:
    """Whether ``sql`` (``dialect``) holds a placeholder; False when it does not parse."""
    if ":" not in sql and "$" not in sql and "%" not in sql and "?" not in sql:
        return False
    try:
        return any(True for _ in sqlglot.parse_one(sql, read=dialect).find_all(exp.Placeholder))
    except SqlglotError:
        return False


def typed(root: exp.Expression) -> exp.Expression:
    """``root`` with every run parameter cast to TIMESTAMPTZ (so both engines type it the same)."""

    def cast(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and not isinstance(node.parent, exp.Cast):
            return exp.cast(node.copy(), PARAMETER_TYPE)
        return node

    return root.transform(cast, copy=True)


def typed_sql(sql: str) -> str:
    """``sql`` (PostgreSQL dialect) with its run parameters cast to TIMESTAMPTZ; unchanged without any.

    What the meaning check and the DuckDB transpiler see, so that a parameter has a known type.
    (sqlglot writes a named placeholder as ``%(name)s`` for PostgreSQL; it reads that back as the
    same placeholder.)
    """
    if not uses_parameters(sql):
        return sql
    return typed(sqlglot.parse_one(sql, read="postgres")).sql(dialect="postgres")


def check_names(names, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values of ``names`` (the parameters a statement uses); refuses an unknown or unset one."""
    values = {k.lower(): v for k, v in (values or {}).items()}
    out: dict[str, Any] = {}
    for name in names:
        if name.lower() not in RUN_PARAMETERS:
            raise SQLRefused(f"Unknown parameter :{name}; the run parameters are {allowed_list()}.")
        out[name] = values.get(name.lower())
    missing = [n for n, v in out.items() if v is None]
    if missing:
        raise SQLRefused(
            f"The SQL uses {', '.join(':' + n for n in sorted(missing))}, which this run does not set"
            " (it has no data interval)."
        )
    return out


def render(sql: str, values: Mapping[str, Any] | None, *, dialect: str = "postgres") -> tuple[str, dict[str, Any] | None]:
    """``sql`` (PostgreSQL dialect) ready for psycopg, with the values it uses.

    No placeholder: the text unchanged and None. Otherwise the text with each
    ``:name`` as psycopg's ``%(name)s``, typed TIMESTAMPTZ, and every other ``%``
    doubled (psycopg's parameter syntax reads ``%`` anywhere in the text,
    string literals included), and a dict of exactly the names used. A name
    with no value is refused. (DuckDB binds ``$name`` itself: its backend asks
    DuckDB which names a statement uses and calls :func:`check_names`.)
    """
    if dialect != "postgres":
        raise ValueError(f"render() writes psycopg's placeholders; {dialect} binds its own.")
    if not uses_parameters(sql):
        return sql, None
    try:
        root = sqlglot.parse_one(sql, read="postgres")
    except SqlglotError as exc:  # validated before; this would be a bug, said plainly
        raise SQLRefused(f"The SQL with parameters does not parse: {str(exc).splitlines()[0]}.") from exc
    names = check_parameters(root)
    bound = check_names(names, values)
    token = f"atlasp{secrets.token_hex(8)}"
    if token in sql:  # cannot happen by chance; refuse rather than mis-bind
        raise SQLRefused("The SQL holds a reserved name; try again.")

    def mark(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):
            return exp.Placeholder(this=exp.to_identifier(f"{token}_{_name(node).lower()}"))
        return node

    text = typed(root).transform(mark, copy=False).sql(dialect="postgres")
    text = text.replace("%", "%%")
    for name in names:
        text = text.replace(f"%%({token}_{name})s", f"%({name})s")
    return text, bound
