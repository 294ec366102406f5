"""The independent verification scan: does any row about the subject remain, anywhere?

Deliberately a separate code path from the search that erasure deletes with
(``privacy.search``): it ignores how each key is declared (storage, dataset)
and shares only the comparison expression (``keys.match_sql``, so a key's
index serves it too). Every table of every layer, and every quarantine table, is checked on every
column *named* like a confirmed key column, as normalised text, against both
the clear identifiers and their HMAC hashes; quarantined raw records are
searched for the clear identifiers. The result is the proof a request keeps.
"""

from __future__ import annotations

from collections import defaultdict

from django.utils import timezone

from atlas.warehouse import Warehouse
from compliance.policies import pseudonym
from pipelines.models import Dataset

from .keys import match_sql, warehouse_columns
from .models import SubjectKey

RAW_COLUMN = "_raw_record"
RAW_MIN_CHARS = 5


def _forms(clear: dict[str, list[str]], hashed: dict[str, list[str]]) -> dict[str, set[str]]:
    """Per kind, every form an identifier can take in a table: clear (lower-cased) and hashed."""
    forms: dict[str, set[str]] = defaultdict(set)
    for kind, values in clear.items():
        for v in values:
            text = str(v).strip().lower()
            forms[kind].add(text)
            forms[kind].add(pseudonym(str(v).strip()))
            forms[kind].add(pseudonym(text))
    for kind, values in hashed.items():
        forms[kind].update(str(v).lower() for v in values)
    return forms


def scan(wh: Warehouse, resolved: dict) -> list[dict]:
    """Count the subject's rows in every table; one entry per table (rows_found 0 is the proof)."""
    clear = (resolved or {}).get("clear", {})
    forms = _forms(clear, (resolved or {}).get("hashed", {}))
    names: dict[str, set[str]] = defaultdict(set)  # column name -> kinds
    for column, kind in SubjectKey.objects.filter(status=SubjectKey.Status.CONFIRMED).values_list("column", "kind"):
        names[column].add(kind)
    raw_values = sorted({str(v).strip().lower() for vs in clear.values() for v in vs if len(str(v).strip()) >= RAW_MIN_CHARS})
    now = timezone.now().isoformat()
    proof = []
    catalogue = warehouse_columns(wh)
    for ds in Dataset.objects.order_by("layer", "table"):
        for table, is_quarantine in ((ds.table, False), (f"{ds.table}__quarantine", True)):
            if (ds.layer, table) not in catalogue:
                continue
            columns = list(catalogue[(ds.layer, table)])
            parts, params, keys = [], [], []
            for col in columns:
                values = sorted(set().union(*(forms.get(k, set()) for k in names.get(col, ()))))
                if values:
                    parts.append(f"{match_sql(wh.quote(col))} IN ({', '.join(['%s'] * len(values))})")
                    params.extend(values)
                    keys.append(f"{col} ({', '.join(sorted(names[col]))})")
            if RAW_COLUMN in columns and raw_values:
                for v in raw_values:
                    parts.append(f"strpos(lower(CAST({wh.quote(RAW_COLUMN)} AS text)), %s) > 0")
                    params.append(v)
                keys.append(f"{RAW_COLUMN} (text)")
            found = 0
            if parts:
                with wh.cursor() as cur:
                    found = int(cur.execute(
                        f"SELECT count(*) FROM {wh.table(ds.layer, table)} WHERE {' OR '.join(parts)}", params
                    ).fetchone()[0])
            proof.append({
                "dataset": ds.name, "layer": ds.layer, "table": f"{ds.layer}.{table}", "quarantine": is_quarantine,
                "keys": keys, "values_searched": len(params), "rows_found": found, "checked_at": now,
            })
    return proof


def residue(proof: list[dict]) -> list[dict]:
    return [{"table": p["table"], "rows_found": p["rows_found"]} for p in proof if p["rows_found"]]
