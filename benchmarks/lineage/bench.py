"""One engine's measurements (a child process with that engine's Django settings); prints JSON last."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable

LAYERS = int(os.environ.get("BENCH_LAYERS", "8"))
WIDTH = int(os.environ.get("BENCH_WIDTH", "5"))  # datasets per layer
COLUMNS = int(os.environ.get("BENCH_COLUMNS", "100"))  # columns per dataset
REPEAT = int(os.environ.get("BENCH_REPEAT", "7"))


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, skip_checks=True)


def build_graph() -> tuple[int, int, int]:
    """A layered DAG: each dataset reads two of the layer before; each column comes from two columns of them."""
    from lineage.models import LineageEdge, LineageNode

    LineageEdge.objects.all().delete()
    LineageNode.objects.all().delete()
    datasets = [
        [LineageNode(kind="dataset", namespace="bench", name=f"l{layer}.d{i}") for i in range(WIDTH)] for layer in range(LAYERS)
    ]
    LineageNode.objects.bulk_create([d for layer in datasets for d in layer])
    columns: dict[int, list[LineageNode]] = {}
    new = []
    for layer in datasets:
        for d in layer:
            cols = [LineageNode(kind="column", namespace="bench", name=d.name, column=f"c{j}", parent=d, position=j) for j in range(COLUMNS)]
            columns[d.pk] = cols
            new.extend(cols)
    LineageNode.objects.bulk_create(new, batch_size=2000)
    edges = []
    for k in range(1, LAYERS):
        for i, d in enumerate(datasets[k]):
            for src in (datasets[k - 1][i], datasets[k - 1][(i + 1) % WIDTH]):
                job = {"job_namespace": "bench", "job_name": d.name}
                edges.append(LineageEdge(source=src, target=d, kind="dataset", **job))
                for j in range(COLUMNS):
                    edges.append(LineageEdge(source=columns[src.pk][j], target=columns[d.pk][j], kind="column", subtype="TRANSFORMATION", **job))
                for j in range(3):  # join / filter keys: dataset-wide indirect lineage
                    edges.append(LineageEdge(source=columns[src.pk][j], target=d, kind="column", type="INDIRECT", subtype="JOIN", **job))
    LineageEdge.objects.bulk_create(edges, batch_size=5000)
    return datasets[-1][0].pk, len(new), len(edges)


def atlas_upstream(root_id: int) -> set[int]:
    """Atlas's walk, ids only (what the floor returns)."""
    from lineage import graph
    from lineage.models import LineageNode

    return graph.column_lineage_ids(LineageNode.objects.get(pk=root_id), graph.UPSTREAM)


def atlas_upstream_nodes(root_id: int) -> set[int]:
    """Atlas's walk with the column nodes loaded as model instances (what the command and API use)."""
    from lineage import graph
    from lineage.models import LineageNode

    return {n.pk for n in graph.column_lineage(LineageNode.objects.get(pk=root_id), graph.UPSTREAM)}


def floor_upstream(root_id: int) -> set[int]:
    """The best hand-written query: one WITH RECURSIVE over the edges, the same semantics, ids only."""
    from django.db import connection

    sql = """
        WITH RECURSIVE walk(id) AS (
            SELECT id FROM lineage_lineagenode WHERE id = %s OR parent_id = %s
          UNION
            SELECT CASE WHEN a.via = 0 THEN e.source_id ELSE n.parent_id END
            FROM walk w
            JOIN (SELECT 0 AS via UNION ALL SELECT 1) a ON 1 = 1
            LEFT JOIN lineage_lineageedge e ON a.via = 0 AND e.target_id = w.id AND e.kind = 'column'
            LEFT JOIN lineage_lineagenode n ON a.via = 1 AND n.id = w.id AND n.parent_id IS NOT NULL
            WHERE (a.via = 0 AND e.id IS NOT NULL) OR (a.via = 1 AND n.id IS NOT NULL)
        )
        SELECT w.id FROM walk w JOIN lineage_lineagenode n ON n.id = w.id
        WHERE n.kind = 'column' AND n.parent_id <> %s
    """
    with connection.cursor() as cur:
        cur.execute(sql, [root_id, root_id, root_id])
        return {r[0] for r in cur.fetchall()}


def orm_per_node(root_id: int) -> set[int]:
    """What people write first: a Python BFS asking the ORM for each node's inputs."""
    from lineage.models import LineageEdge, LineageNode

    root = LineageNode.objects.get(pk=root_id)
    frontier = [root.pk, *root.children.values_list("pk", flat=True)]
    seen = set(frontier)
    while frontier:
        node_id = frontier.pop()
        node = LineageNode.objects.get(pk=node_id)
        nxt = list(LineageEdge.objects.filter(target_id=node_id, kind="column").values_list("source_id", flat=True))
        if node.parent_id:
            nxt.append(node.parent_id)
        for n in nxt:
            if n not in seen:
                seen.add(n)
                frontier.append(n)
    return set(LineageNode.objects.filter(pk__in=seen, kind="column").exclude(parent_id=root_id).values_list("pk", flat=True))


def orm_per_level(root_id: int) -> set[int]:
    """A careful Python BFS: one ORM query per level of the graph (target__in=frontier)."""
    from lineage.models import LineageEdge, LineageNode

    frontier = {root_id, *LineageNode.objects.filter(parent_id=root_id).values_list("pk", flat=True)}
    seen = set(frontier)
    while frontier:
        sources = set(LineageEdge.objects.filter(target_id__in=frontier, kind="column").values_list("source_id", flat=True))
        parents = set(LineageNode.objects.filter(pk__in=frontier, parent_id__isnull=False).values_list("parent_id", flat=True))
        frontier = (sources | parents) - seen
        seen |= frontier
    return set(LineageNode.objects.filter(pk__in=seen, kind="column").exclude(parent_id=root_id).values_list("pk", flat=True))


def extraction() -> dict[str, list[float]]:
    """Column lineage of the demo's customer_lifetime_value SELECT: Atlas vs sqlglot.lineage per column."""
    import sqlglot
    from sqlglot.lineage import lineage as sqlglot_lineage
    from sqlglot.optimizer.qualify import qualify

    from demo.install import step_sql
    from lineage.extract import extract

    sql = step_sql()["customer_lifetime_value"]
    schemas = {
        ("chart", "customers"): ["customer_id", "first_name", "last_name", "email", "phone", "city"],
        ("chart", "orders"): ["order_id", "customer_id", "ordered_at", "status", "currency", "shipping_city"],
        ("chart", "order_items"): ["order_id", "line_no", "sku", "product_name", "quantity", "unit_price", "line_amount"],
    }
    nested = {"chart": {t: {c: "text" for c in cols} for (_, t), cols in schemas.items()}}
    outputs = extract(sql, schemas).outputs

    def floor() -> None:  # the unavoidable part: parse and qualify once
        qualify(sqlglot.parse_one(sql, read="postgres"), schema=nested, dialect="postgres")

    def per_column() -> None:
        for col in outputs:
            sqlglot_lineage(col, sql, schema=nested, dialect="postgres")

    return {
        "atlas_extract": samples(lambda: extract(sql, schemas), REPEAT * 3),
        "floor_parse_qualify": samples(floor, REPEAT * 3),
        "sqlglot_lineage_per_column": samples(per_column, REPEAT * 3),
    }


def samples(fn: Callable[[], object], n: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    setup_django()
    from django.db import connection

    root_id, n_columns, n_edges = build_graph()
    expected = floor_upstream(root_id)
    results = {}
    for name, fn, reps in [
        ("floor_recursive_sql", floor_upstream, REPEAT),
        ("atlas", atlas_upstream, REPEAT),
        ("atlas_with_nodes", atlas_upstream_nodes, REPEAT),
        ("orm_bfs_per_level", orm_per_level, REPEAT),
        ("orm_bfs_per_node", orm_per_node, max(2, REPEAT // 3)),
    ]:
        got = fn(root_id)
        if got != expected:
            raise SystemExit(f"{name} found {len(got)} columns upstream, the floor {len(expected)}")
        results[name] = samples(lambda fn=fn: fn(root_id), reps)
    report = {
        "engine": connection.vendor,
        "graph": {"datasets": LAYERS * WIDTH, "columns": n_columns, "edges": n_edges, "upstream_columns": len(expected)},
        "walk_samples": results,
        "walk_medians": {k: statistics.median(v) for k, v in results.items()},
        "extract_samples": extraction(),
    }
    report["extract_medians"] = {k: statistics.median(v) for k, v in report["extract_samples"].items()}
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
