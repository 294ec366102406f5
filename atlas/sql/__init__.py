"""Atlas' SQL toolkit: operator SQL parsed once, refused unless every part of it is allowed.

Operator SQL (a step's SELECT, a custom check's condition) is written in the
PostgreSQL dialect and runs on PostgreSQL as written and on DuckDB as
transpiled by sqlglot. Validation is an allowlist at every level:

* syntax (``nodes``): only the AST node kinds of a read-only query;
* relations (``relations``): every table reference resolves, by scope, to a
  WITH query visible at that point or to a dataset Atlas knows;
* functions (``functions``): every function is on the allowlist of each engine;
* rows (``rows``): no whole-row value, which would carry every column past
  the column policies.

``validate`` ties them together. ``transpile`` renders operator SQL for DuckDB
with the column types, so that it means what it means on PostgreSQL, and
``check_same_meaning`` refuses what cannot be made equal (issue 13).
"""

from .errors import SQLRefused
from .transpile import check_same_meaning, to_duckdb
from .validate import (
    Catalog,
    ValidatedSelect,
    parse_statement,
    validate_expression,
    validate_select,
)

__all__ = [
    "Catalog",
    "SQLRefused",
    "ValidatedSelect",
    "check_same_meaning",
    "parse_statement",
    "to_duckdb",
    "validate_expression",
    "validate_select",
]
