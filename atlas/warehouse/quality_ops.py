"""How each engine says what the quality checks need: regex, casts, type families, counting strategies.

Mixed into the backends (``DuckDBWarehouse(DuckDBQualityOps, Warehouse)``), so
``quality`` asks the warehouse — ``wh.regex_match(...)``, ``wh.unique_key(...)``,
``wh.features_key_bitmaps`` — and never an engine's name. A third backend inherits
:class:`QualityOps` (standard SQL, no shortcuts) and overrides what it does better.

The counting strategies are measured in ``benchmarks/quality``: on DuckDB
(columnar, hash-based) uniqueness of a dense integer key is counted with a bitmap
of its range (``bitstring_agg``: one bit per possible value, no hash table; 6x
faster over a million keys), a foreign key onto one probes that bitmap (2x), and
several key columns are counted as one 64-bit ``hash()``; on PostgreSQL two
32-bit integer columns are packed into one bigint (exact), other key columns are
compared as one text key in the byte order of the "C" collation (a cheap datum sort). Each stays exact in the compiler's hands: a key outside the
range read, a hash collision or a text-key collision can only overstate a surplus,
which sends the check to its exact count.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence

from .errors import NotSupported, WarehouseError

# Type families: engine type names compared by meaning (schema checks, key strategies).
TYPE_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timestamptz", ("timestamp with time zone", "timestamptz")),
    ("timestamp", ("timestamp", "timestamp without time zone", "datetime", "timestamp_ns", "timestamp_ms", "timestamp_s")),
    ("date", ("date",)),
    ("time", ("time", "time without time zone")),
    ("interval", ("interval",)),
    ("boolean", ("boolean", "bool")),
    ("integer", ("smallint", "integer", "int", "int2", "int4", "int8", "bigint", "tinyint", "hugeint", "ubigint", "uinteger", "usmallint", "utinyint")),
    ("decimal", ("numeric", "decimal")),
    ("float", ("real", "double precision", "double", "float", "float4", "float8")),
    ("text", ("text", "varchar", "character varying", "character", "char", "string", "bpchar")),
    ("json", ("json", "jsonb")),
    ("uuid", ("uuid",)),
)

# Type families whose text form is canonical: equal values always give equal text.
TEXT_CANONICAL = frozenset({"integer", "text", "date", "timestamp", "uuid", "boolean"})
# Type families whose DuckDB hash() is canonical: equal values always hash alike (DuckDB hashes
# -0.0 as 0.0 and every NaN alike, and compares NaN equal to NaN).
HASH_CANONICAL = TEXT_CANONICAL | {"decimal", "float", "timestamptz", "time"}
# Integer types a key bitmap can index: signed types up to 64 bits.
BITMAP_TYPES = frozenset({"tinyint", "smallint", "integer", "int", "int2", "int4", "int8", "bigint"})


# Integer types of at most 32 bits: two of them pack into one bigint key.
INT32_TYPES = frozenset({"tinyint", "smallint", "integer", "int", "int2", "int4", "serial", "smallserial"})


def _base(type_name: str) -> str:
    return re.sub(r"\(.*\)$", "", str(type_name).strip().lower()).strip()


def type_family(type_name: str) -> str:
    """The family of an engine type name: ``DECIMAL(12,2)`` and ``numeric`` are both ``decimal``."""
    base = _base(type_name)
    for family, names in TYPE_FAMILIES:
        if base in names:
            return family
    return base


class QualityOps:
    """Standard SQL every engine speaks; the shortcuts are off."""

    # Integer keys can be counted and probed with a bitmap of their range (``bitmap_*``).
    features_key_bitmaps = False
    # A scan's self-contained subqueries may run beside it, on other connections, from one
    # snapshot (``operator_rows_in_one_snapshot``); worth it above ``concurrent_scan_bytes``.
    features_concurrent_scan = False

    def table_bytes(self, schema: str, table: str) -> int | None:
        """The table's size on disk, or None where the engine does not say (cheap: no scan)."""
        return None

    # ``regex_match(expr)`` is abstract in the backend interface: every engine says it.

    def regex_problem(self, pattern: str) -> str | None:
        """Why this engine refuses ``pattern`` (a syntax it lacks), or None."""
        return None

    @staticmethod
    def cast_text(expr: str) -> str:
        """``expr`` as text (accepted values written as strings compare as text)."""
        return f"CAST({expr} AS text)"

    @staticmethod
    def type_family(type_name: str) -> str:
        return type_family(type_name)

    def is_bitmap_type(self, type_name: str) -> bool:
        """Whether a column of ``type_name`` may be counted with a key bitmap on this engine."""
        return self.features_key_bitmaps and type_name.strip().lower() in BITMAP_TYPES

    def unique_key(self, columns: Sequence[str], types: Sequence[str]) -> str | None:
        """One expression standing for several key columns in ``count(k) - count(DISTINCT k)``, or None.

        Equal keys must give equal values; distinct keys may collide (that only
        overstates a surplus). None: no such expression here; the caller groups the tuples.
        """
        return None

    def ensure_key_index(self, schema: str, table: str, columns: Sequence[str]) -> bool:
        """Make equality lookups of ``columns`` in the table cheap where the engine keeps such an index.

        An append's gate asks before it looks the new rows' keys up in the published table
        (``quality.incremental``). True when an index is there; False here: the engine joins
        (DuckDB hashes the published keys in one pass, measured in ``benchmarks/quality``).
        """
        return False

    def bitmap_surplus(self, key: str, lo: int, hi: int, source: str) -> str:
        """Rows of ``source`` minus the distinct values of ``key`` in ``[lo, hi]`` (an upper bound of the surplus)."""
        raise NotSupported(f"{type(self).__name__} has no key bitmaps (features_key_bitmaps).")

    def bitmap_orphans(self, probe: str, ref: str, other: str, lo: int, hi: int) -> str:
        """An aggregate: the rows whose ``probe`` is not among ``other.ref``, NULL when ``other`` left [lo, hi]."""
        raise NotSupported(f"{type(self).__name__} has no key bitmaps (features_key_bitmaps).")


class DuckDBQualityOps(QualityOps):
    features_key_bitmaps = True

    def regex_match(self, expr: str) -> str:
        return f"regexp_matches({expr}, %s)"

    def regex_problem(self, pattern: str) -> str | None:
        return re2_problem(pattern)

    def unique_key(self, columns: Sequence[str], types: Sequence[str]) -> str | None:
        # One 64-bit hash per key instead of a hash table of key tuples.
        if all(type_family(t) in HASH_CANONICAL for t in types):
            return "hash(" + ", ".join(self.quote(c) for c in columns) + ")"
        return None

    def bitmap_surplus(self, key: str, lo: int, hi: int, source: str) -> str:
        # A key outside [lo, hi] (the table changed since the range was read) counts as surplus.
        return (
            f"(SELECT count({key}) - coalesce(bit_count(bitstring_agg({key}, {lo}, {hi})"
            f" FILTER (WHERE {key} BETWEEN {lo} AND {hi})), 0) FROM {source})"
        )

    def bitmap_orphans(self, probe: str, ref: str, other: str, lo: int, hi: int) -> str:
        # Exact while the referenced keys all lie in [lo, hi], some of them; else NULL (the caller's
        # anti-join counts). CASE, not AND/OR: DuckDB evaluates a THEN only for the rows its WHEN
        # selects, so get_bit never sees a key outside the bitmap; measured cheaper than clamping.
        bitmap = f"(SELECT bitstring_agg({ref}, {lo}, {hi}) FROM {other} WHERE {ref} BETWEEN {lo} AND {hi})"
        return (
            f"CASE WHEN (SELECT count({ref}) > 0 AND count(*) FILTER (WHERE {ref} NOT BETWEEN {lo} AND {hi}) = 0"
            f" FROM {other}) THEN count(*) FILTER (WHERE {probe} IS NOT NULL AND CASE WHEN {probe} BETWEEN {lo}"
            f" AND {hi} THEN get_bit({bitmap}, CAST({probe} - {lo} AS INTEGER)) = 0 ELSE true END) END"
        )


class PostgresQualityOps(QualityOps):
    # One statement runs its subqueries one after another in one backend; side by side, a
    # uniqueness sort and a foreign-key join each take a CPU (benchmarks/quality: 20 checks over
    # a million rows in about half the time on 2 CPUs). DuckDB already spreads one statement.
    features_concurrent_scan = True

    def table_bytes(self, schema: str, table: str) -> int | None:
        with self.cursor() as cur:
            row = cur.execute("SELECT pg_total_relation_size(to_regclass(%s))", [f'"{schema}"."{table}"']).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def regex_match(self, expr: str) -> str:
        return f"({expr} ~ %s)"

    def regex_problem(self, pattern: str) -> str | None:
        from .base import WarehouseError

        try:
            with self.cursor() as cur:
                cur.execute("SELECT '' ~ %s", [pattern]).fetchall()
        except WarehouseError as exc:
            return f"The regex is not valid for PostgreSQL: {str(exc).splitlines()[0]}"
        return None

    @staticmethod
    def key_index_name(schema: str, table: str, columns: Sequence[str]) -> str:
        """The name of the btree on ``columns`` of ``schema.table`` (unquoted): the table's and the columns' hash."""
        return "atlas_key_" + hashlib.sha256(f"{schema}.{table}:{','.join(columns)}".encode()).hexdigest()[:20]

    def ensure_key_index(self, schema: str, table: str, columns: Sequence[str]) -> bool:
        # A btree on the key columns, created once (:meth:`key_index_name`) and kept up to date by PostgreSQL on
        # every insert; a replace publishes a new table, which an incremental step's publish indexes before the
        # swap (``Warehouse.publish(key_index=True)``), else the next gate or merge adds it again.
        # An index that leads with the same columns (a merge key's, wider) serves the lookups already.
        name = self.quote(self.key_index_name(schema, table, columns))
        keys = ", ".join(self.quote(c) for c in columns)
        try:
            with self.cursor() as cur:
                leading = cur.execute(
                    "SELECT ARRAY(SELECT a.attname FROM generate_subscripts(i.indkey, 1) AS s JOIN pg_attribute AS a"
                    " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[s] WHERE s < %s ORDER BY s)"
                    " FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_am AS m ON m.oid = c.relam"
                    " WHERE i.indrelid = to_regclass(%s) AND i.indisvalid AND i.indpred IS NULL AND m.amname = 'btree'",
                    [len(columns), self.table(schema, table)]).fetchall()
                if any(sorted(cols) == sorted(columns) for (cols,) in leading):
                    return True
                cur.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {self.table(schema, table)} ({keys})")
        except WarehouseError:
            # a concurrent gate created it first, or the table is gone: the lookups stay exact either way
            return False
        return True

    def unique_key(self, columns: Sequence[str], types: Sequence[str]) -> str | None:
        # Two columns of at most 32 bits each: one bigint, the first in the high half (injective, so
        # exact; a bigint sort is 1.6x cheaper than the text key's over a million rows).
        if len(columns) == 2 and all(_base(t) in INT32_TYPES for t in types):
            high, low = (self.quote(c) for c in columns)
            return f"((CAST({high} AS bigint) << 32) | (CAST({low} AS bigint) & 4294967295))"
        # One text key in the byte order of the "C" collation: a cheap datum sort. Distinct keys
        # may collide (a separator inside a value), which only overstates the surplus.
        if all(type_family(t) in TEXT_CANONICAL for t in types):
            return "(" + " || chr(31) || ".join(self.cast_text(self.quote(c)) for c in columns) + ') COLLATE "C"'
        return None


@functools.lru_cache(maxsize=1024)
def re2_problem(pattern: str) -> str | None:
    """Why DuckDB's regex engine (RE2) refuses ``pattern`` (backreferences, lookaround), or None.

    Remembered per pattern (the answer is DuckDB's, fixed for the process): each asking opened an
    in-memory DuckDB, about 24 ms, for every regex check validated, saved or run.
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        return f"The regex is not supported by DuckDB (RE2): {str(exc).splitlines()[0]}"
    finally:
        con.close()
    return None


def portable_regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot run on every engine a pipeline may meet, or None.

    DuckDB (the embedded engine, and the parser of every load) is always asked,
    and the configured warehouse too when it is another engine: a pattern valid
    on one engine only would make the same pipeline fail on the other.
    """
    if problem := re2_problem(pattern):
        return problem
    from . import WarehouseError, get_warehouse

    try:
        wh = get_warehouse()
    except WarehouseError:
        return None
    return None if isinstance(wh, DuckDBQualityOps) else wh.regex_problem(pattern)
