"""The quarantine of a dataset: rows that failed a drop check, kept with why and when.

The quarantine table is the one ingest writes unparseable records to
(``<table>__quarantine``), extended with ``_failed_checks``, ``_check_run_id``
and the dataset's columns as text (text survives a later change of the
dataset's types, and holds whatever a failing row contained).

The split is atomic: in one warehouse transaction the failing rows are
flagged once (every drop predicate evaluated in one pass), copied to the
quarantine with the names of all the checks they failed, and deleted from
the staged table by their row locator — every staged row ends up in exactly
one of the two tables, or, if anything fails, neither table changes.
"""

from __future__ import annotations

from typing import Any

from atlas.warehouse import Warehouse, WarehouseError
from atlas.warehouse.base import QUARANTINE_COLUMNS, Cursor

from .compiler import ALIAS, Plan, RowCheck

EXTRA_COLUMNS = ("_failed_checks", "_check_run_id")
# Staged columns that mean the same as a quarantine column fill it instead of a copy.
SHARED_COLUMNS = ("_batch_id", "_source")
RESERVED = set(QUARANTINE_COLUMNS) | set(EXTRA_COLUMNS)


def quarantine_name(table: str) -> str:
    return f"{table}__quarantine"


def ensure_quarantine(wh: Warehouse, schema: str, table: str, columns: list[str]) -> str:
    """The dataset's quarantine table, with every column of ``columns`` (as text)."""
    name = wh.ensure_quarantine_table(schema, table)
    have = {c.name for c in wh.columns(schema, name)}
    with wh.cursor() as cur:
        if "_failed_checks" not in have:
            cur.execute(f"ALTER TABLE {wh.table(schema, name)} ADD COLUMN {wh.quote('_failed_checks')} text")
        if "_check_run_id" not in have:
            cur.execute(f"ALTER TABLE {wh.table(schema, name)} ADD COLUMN {wh.quote('_check_run_id')} bigint")
        for col in columns:
            if col not in have and col not in RESERVED:
                cur.execute(f"ALTER TABLE {wh.table(schema, name)} ADD COLUMN {wh.quote(col)} text")
    return name


def data_columns(columns: list[str]) -> list[str]:
    """The staged columns copied as they are (the shared ones fill their meta column)."""
    clash = [c for c in columns if c in RESERVED and c not in SHARED_COLUMNS]
    if clash:
        raise WarehouseError(
            f"Cannot quarantine rows with column(s) {', '.join(clash)}: the names are reserved for the quarantine's"
            " own columns; rename them in the step's SELECT."
        )
    return [c for c in columns if c not in SHARED_COLUMNS]


def split_statements(
    wh: Warehouse,
    plan: Plan,
    drops: list[RowCheck],
    *,
    target: str,
    check_run_id: int,
    run_id: int | None,
    batch_id: str | None,
    source: str,
) -> list[tuple[str, list[Any]]]:
    """The statements that move every row failing any of ``drops`` into the quarantine.

    Run them in one transaction (:func:`split`); :func:`reprocess` adds its own
    statements to the same transaction.
    """
    stg = wh.table(plan.schema, plan.table)
    columns = [c.name for c in wh.columns(plan.schema, plan.table)]
    qname = ensure_quarantine(wh, plan.schema, target, columns)
    copied = data_columns(columns)
    flagged = wh.table(plan.schema, f"{plan.table[:40]}__flag{check_run_id}")
    moved = [rc.moved for rc in drops]  # uniqueness moves all copies of a key but one
    names_sql = ", ".join(f"CASE WHEN {bad} THEN CAST(%s AS text) END" for bad, _ in moved)
    names_params: list[Any] = []
    for rc in drops:
        names_params += [*rc.params, rc.check.name]
    where = " OR ".join(bad for bad, _ in moved)
    where_params = [p for rc in drops for p in rc.params]
    joins = " ".join(j for _, rc_joins in moved for j in rc_joins)
    create = (
        f"CREATE TABLE {flagged} AS SELECT {wh.locator_columns(ALIAS)},"
        f" concat_ws(', ', {names_sql}) AS {wh.quote('_failed_checks')}, {ALIAS}.*"
        f" FROM {stg} AS {ALIAS} {joins} WHERE {where}"
    )
    meta = {c: (wh.quote(c) if c in columns else "NULL") for c in SHARED_COLUMNS}
    targets = ["_batch_id", "_run_id", "_source", "_reason", "_quarantined_at", "_failed_checks", "_check_run_id", *copied]
    values = [
        f"coalesce(CAST({meta['_batch_id']} AS text), CAST(%s AS text))",
        "CAST(%s AS bigint)",
        f"coalesce(CAST({meta['_source']} AS text), CAST(%s AS text))",
        f"'Failed quality check(s): ' || {wh.quote('_failed_checks')}",
        "current_timestamp",
        wh.quote("_failed_checks"),
        "CAST(%s AS bigint)",
        *[f"CAST({wh.quote(c)} AS text)" for c in copied],
    ]
    insert = (
        f"INSERT INTO {wh.table(plan.schema, qname)} ({', '.join(wh.quote(c) for c in targets)})"
        f" SELECT {', '.join(values)} FROM {flagged}"
    )
    delete = f"DELETE FROM {stg} WHERE {wh.locator_in(flagged)}"
    return [
        (f"DROP TABLE IF EXISTS {flagged}", []),
        (create, names_params + where_params),
        (insert, [batch_id, run_id, source, check_run_id]),
        (delete, []),
        (f"DROP TABLE {flagged}", []),
    ]


def execute(cur: Cursor, statements: list[tuple[str, list[Any]]]) -> None:
    for sql, params in statements:
        cur.execute(sql, params)


def count_moved(wh: Warehouse, plan: Plan, rc: RowCheck) -> int:
    """How many rows a split would move for ``rc`` alone."""
    bad, joins = rc.moved
    with wh.cursor() as cur:
        return int(cur.execute(
            f"SELECT count(*) FROM {wh.table(plan.schema, plan.table)} AS {ALIAS} {' '.join(joins)} WHERE {bad}",
            list(rc.params),
        ).fetchone()[0])


def split(wh: Warehouse, plan: Plan, drops: list[RowCheck], **kwargs: Any) -> int:
    """Move the rows failing any drop check to quarantine, atomically; return how many moved."""
    before = wh.row_count(plan.schema, plan.table)
    statements = split_statements(wh, plan, drops, **kwargs)
    if not wh.features.transactions:
        return split_by_rewrite(wh, plan, statements, before=before, check_run_id=kwargs["check_run_id"], target=kwargs["target"])
    with wh.transaction() as cur:
        execute(cur, statements)
    return before - wh.row_count(plan.schema, plan.table)


def split_by_rewrite(
    wh: Warehouse, plan: Plan, statements: list[tuple[str, list[Any]]], *, before: int, check_run_id: int, target: str,
) -> int:
    """The split on an engine without transactions (Spark over Parquet): new tables, checked counts, one swap.

    The same statements flag the failing rows (``split_statements``); then, instead of a
    ``DELETE``, the rows to keep are written to a new table by the same locator, and
    ``kept + flagged = staged`` is checked before anything changes (exact: every staged row
    is in exactly one of them, or the split stops here with both tables as they were). The
    quarantine gets the flagged rows (Spark commits an ``INSERT``'s files when its job ends,
    or none), then the kept table replaces the staged one (a drop and a rename, catalog
    operations). If that replacement fails, the quarantine rows of this check run are removed
    again and the error raised: the staged table is as it was, or gone (the step fails and
    nothing is published). A worker killed between the two keeps the quarantined rows of a
    check run whose step did not publish (they carry its ``_check_run_id``).
    """
    drop_flagged, create, insert, _delete, _drop = statements
    flagged = create[0].split(" AS SELECT ", 1)[0].removeprefix("CREATE TABLE ")
    kept_name = f"{plan.table[:40]}__kept{check_run_id}"
    staged, kept = wh.table(plan.schema, plan.table), wh.table(plan.schema, kept_name)
    with wh.cursor() as cur:
        execute(cur, [drop_flagged, create])
        try:
            cur.execute(f"DROP TABLE IF EXISTS {kept}")
            cur.execute(f"CREATE TABLE {kept} AS {wh.rows_not_in(staged, flagged)}")
            (moved,) = cur.execute(f"SELECT count(*) FROM {flagged}").fetchone()
            if wh.row_count(plan.schema, kept_name) + int(moved) != before:
                raise WarehouseError(
                    f"The drop split of {plan.schema}.{plan.table} did not account for every row; nothing was moved."
                )
            cur.execute(*insert)
            try:
                replace_staged(wh, plan.schema, plan.table, kept_name)
            except WarehouseError:
                q = wh.table(plan.schema, quarantine_name(target))
                cur.execute(f"DELETE FROM {q} WHERE {wh.quote('_check_run_id')} = %s", [check_run_id])
                raise
        finally:
            cur.execute(f"DROP TABLE IF EXISTS {kept}")
            cur.execute(f"DROP TABLE IF EXISTS {flagged}")
    return int(moved)


def replace_staged(wh: Warehouse, schema: str, staged: str, kept: str) -> None:
    """The staged table becomes ``kept`` (the rows the split keeps): a drop and a rename."""
    with wh.cursor() as cur:
        cur.execute(f"DROP TABLE {wh.table(schema, staged)}")
        cur.execute(f"ALTER TABLE {wh.table(schema, kept)} RENAME TO {wh.quote(staged)}")


def count_rows(
    wh: Warehouse, schema: str, table: str, check_run_ids: list[int] | None = None, *, with_rejects: bool = False
) -> int:
    """Rows quarantined by checks (of ``check_run_ids``; all when None); ``with_rejects`` adds ingest rejects."""
    name = quarantine_name(table)
    if not wh.table_exists(schema, name):
        return 0
    if "_check_run_id" not in {c.name for c in wh.columns(schema, name)}:
        # only ingest rejects so far: no check has quarantined a row here
        return wh.row_count(schema, name) if with_rejects else 0
    where, params = _run_filter(wh, check_run_ids, with_rejects=with_rejects)
    with wh.cursor() as cur:
        return int(cur.execute(f"SELECT count(*) FROM {wh.table(schema, name)} WHERE {where}", params).fetchone()[0])


def _run_filter(wh: Warehouse, check_run_ids: list[int] | None, *, with_rejects: bool = False) -> tuple[str, list[Any]]:
    col = wh.quote("_check_run_id")
    if check_run_ids is None:
        where, params = f"{col} IS NOT NULL", []
    elif not check_run_ids:
        where, params = "1 = 0", []
    else:
        where, params = f"{col} IN ({', '.join(['%s'] * len(check_run_ids))})", list(check_run_ids)
    return (f"({where} OR {col} IS NULL)", params) if with_rejects else (where, params)


def browse(
    wh: Warehouse, schema: str, table: str, *, limit: int = 50, offset: int = 0, check_run_ids: list[int] | None = None,
    with_rejects: bool = False,
) -> tuple[list[str], list[tuple]]:
    """A page of quarantined rows, newest first: all of them, or those of ``check_run_ids`` (and ingest rejects)."""
    name = quarantine_name(table)
    if not wh.table_exists(schema, name):
        return [], []
    if check_run_ids is not None and "_check_run_id" not in {c.name for c in wh.columns(schema, name)}:
        check_run_ids = None if with_rejects else []
    where, params = ("1 = 1", []) if check_run_ids is None else _run_filter(wh, check_run_ids, with_rejects=with_rejects)
    with wh.cursor() as cur:
        cur.execute(
            f"SELECT * FROM {wh.table(schema, name)} WHERE {where}"
            f" ORDER BY {wh.quote('_quarantined_at')} DESC LIMIT {int(limit)} OFFSET {int(offset)}",
            params,
        )
        return cur.column_names, cur.fetchall()
