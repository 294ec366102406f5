"""``manage.py lineage DATASET [--upstream|--downstream] [--columns] [--depth N] [--refresh]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lineage import graph
from lineage.models import LineageNode


class Command(BaseCommand):
    help = "Print the lineage of a dataset: the datasets (or columns) upstream and downstream of it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="Atlas dataset name, layer.table, or namespace:name")
        side = parser.add_mutually_exclusive_group()
        side.add_argument("--upstream", action="store_true", help="only what feeds it")
        side.add_argument("--downstream", action="store_true", help="only what it feeds")
        parser.add_argument("--columns", action="store_true", help="column lineage, with PII flags")
        parser.add_argument("--depth", type=int, default=graph.MAX_DEPTH, help="hops to follow (default: all)")
        parser.add_argument("--refresh", action="store_true", help="refresh the graph from every pipeline first")

    def handle(self, *args, dataset: str, upstream: bool, downstream: bool, columns: bool, depth: int, refresh: bool, **opts) -> None:
        if depth < 0:
            raise CommandError("--depth must be 0 or more.")
        if refresh:
            for result in graph.refresh_all():
                if result.warning:
                    self.stderr.write(result.warning)
        try:
            root = graph.find_dataset_node(dataset)
        except graph.LineageError as exc:
            raise CommandError(str(exc)) from exc
        directions = [graph.UPSTREAM] if upstream else [graph.DOWNSTREAM] if downstream else [graph.UPSTREAM, graph.DOWNSTREAM]
        self.stdout.write(f"{root.namespace}:{root.name}")
        for direction in directions:
            self.stdout.write(f"\n{direction}:")
            lines = self._columns(root, direction, depth) if columns else self._datasets(root, direction, depth)
            for line in lines or ["  (nothing)"]:
                self.stdout.write(line)

    @staticmethod
    def _datasets(root: LineageNode, direction: str, depth: int) -> list[str]:
        reached = graph.walk([root.pk], direction, columns=False, depth=depth)
        nodes = LineageNode.objects.filter(pk__in=reached).exclude(pk=root.pk)
        return [
            f"  {'  ' * (reached[n.pk] - 1)}{n.name}  [{n.namespace}, {reached[n.pk]} hop(s)]"
            for n in sorted(nodes, key=lambda n: (reached[n.pk], n.name))
        ]

    @staticmethod
    def _columns(root: LineageNode, direction: str, depth: int) -> list[str]:
        graph.sync_pii()
        carriers = graph.pii_carriers()
        own = list(root.children.all())
        lines = [f"  {root.name}.{c.column}{_pii(c, carriers)}" for c in own]
        lines.append("  from:" if direction == graph.UPSTREAM else "  into:")
        for col in graph.column_lineage(root, direction, depth):
            lines.append(f"    {col.name}.{col.column}  [{col.namespace}]{_pii(col, carriers)}")
        return lines


def _pii(col: LineageNode, carriers: dict[int, set[str]]) -> str:
    entities = sorted(carriers.get(col.pk, ()))
    if entities:
        return f"  PII: {', '.join(entities)}"
    if col.pii_entity and col.pii_protected:
        return f"  PII {col.pii_entity} (protected)"
    return ""
