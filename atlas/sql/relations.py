"""Relations: every table reference resolves, by scope, to a visible WITH query or a known dataset.

The attack of issue 12 named a WITH query after a real table inside a
subquery and read the real table outside it: a reference is a WITH query
only where PostgreSQL would make it one. Walking up from the reference, the
innermost WITH that is visible there wins: in its main query every WITH query
of the list is visible; inside the body of the i-th WITH query only the ones
before it (and, with RECURSIVE, itself). Anything else must be written
``layer.table`` and be a dataset Atlas knows; catalogue-qualified names,
other schemas (``pg_catalog``, ``information_schema``, ``atlas``, ``public``)
and file paths are refused.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from .errors import SQLRefused
from .functions import function_name
from .names import display, normalized

# Set-returning functions that may stand in FROM: they compute values, they read nothing.
TABLE_FUNCTIONS: tuple[type[exp.Func], ...] = (exp.ExplodingGenerateSeries, exp.GenerateSeries)


def with_clause(node: exp.Expression) -> exp.With | None:
    """The WITH attached to a query node (the key is ``with_`` in recent sqlglot)."""
    found = node.args.get("with_") or node.args.get("with")
    return found if isinstance(found, exp.With) else None


def visible_cte(table: exp.Table, name: str) -> exp.CTE | None:
    """The WITH query ``name`` means at ``table``, or None where no WITH of that name is visible."""
    child: exp.Expression = table
    node = table.parent
    while node is not None:
        with_ = with_clause(node) if isinstance(node, exp.Query) else None
        if with_ is not None:
            ctes = list(with_.expressions)
            if child is with_:
                # ``table`` sits in the body of one of the WITH queries: only earlier ones are visible.
                body = next((c for c in ctes if c is _cte_of(table, with_)), None)
                index = ctes.index(body) if body is not None else 0
                visible = ctes[: index + 1] if with_.args.get("recursive") else ctes[:index]
            else:
                visible = ctes
            for cte in reversed(visible):
                if normalized(cte.args["alias"].this) == name:
                    return cte
        child, node = node, node.parent
    return None


def _cte_of(table: exp.Table, with_: exp.With) -> exp.CTE | None:
    node: exp.Expression | None = table
    while node is not None and node.parent is not with_:
        node = node.parent
    return node if isinstance(node, exp.CTE) else None


def resolve_relations(
    root: exp.Expression, is_known: Callable[[str, str], bool], layers: tuple[str, ...]
) -> list[tuple[str, str]]:
    """The datasets ``root`` reads, (layer, table) in order of appearance; refuses anything else."""
    found: list[tuple[str, str]] = []
    unknown: list[str] = []
    for table in root.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            if isinstance(table.this, TABLE_FUNCTIONS):
                continue
            name = function_name(table.this) if isinstance(table.this, exp.Func) else table.this.key
            raise SQLRefused(
                f"The table function {display(name)}() is not allowed; read datasets by name"
                " (layer.table)."
            )
        name = normalized(table.this)
        if table.args.get("catalog"):
            raise SQLRefused(
                f"Refer to datasets as layer.table, not with a database or catalogue in front"
                f" ({display(normalized(table.args['catalog']))}.{display(normalized(table.args.get('db')))}"
                f".{display(name)})."
            )
        schema = normalized(table.args.get("db"))
        if not schema:
            if visible_cte(table, name) is not None:
                continue
            raise SQLRefused(
                f"The table {display(name)!r} is neither a dataset nor a WITH query visible at this"
                f" point of the query. Qualify the table {display(name)!r} with its layer, e.g."
                f" {' or '.join(f'{layer}.{display(name)}' for layer in layers[:2])}; a WITH query"
                " can be used only inside the query that defines it, after its definition."
            )
        if schema not in layers:
            raise SQLRefused(
                f"Unknown layer {display(schema)!r} in {display(schema)}.{display(name)}; read datasets"
                f" as layer.table with a layer among {', '.join(layers)}."
            )
        if not is_known(schema, name):
            unknown.append(f"{schema}.{name}")
        elif (schema, name) not in found:
            found.append((schema, name))
    if unknown:
        raise SQLRefused(
            f"Unknown dataset(s): {', '.join(display(u) for u in dict.fromkeys(unknown))}."
            " Declare them as datasets first."
        )
    return found


def cte_names(root: exp.Expression) -> set[str]:
    return {normalized(cte.args["alias"].this) for cte in root.find_all(exp.CTE)}
