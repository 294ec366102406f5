"""A dbt project as Atlas definitions, with what could not be translated reported per node.

- **Seeds** become a path source (the CSV file), an ingest step into Explore (``<seed>__raw``,
  text as every Explore table) and a refine step into Chart that types the columns as dbt's
  seed loader does (``seeds``); ``ref('<seed>')`` reads that typed Chart table.
- **Sources** become the same when their table gives a file (``external: {location: ...}``,
  as dbt-external-tables writes it, or ``meta: {atlas_location: ...}``); a source already in
  Atlas is named with ``meta: {atlas_table: layer.table}``; any other source cannot be read.
- **Models** become refine (Chart) or aggregate (Navigate) steps writing a dataset of the
  model's name (or ``alias``): the layer is ``atlas_layer`` (a config or a ``meta`` key),
  else the folder or schema (``staging``, ``intermediate``, ``base`` -> Chart; ``marts``,
  ``reporting`` ... -> Navigate), else the name's prefix (``stg_``, ``int_`` -> Chart;
  ``fct_``, ``dim_`` -> Navigate), else Navigate when the model reads other models and Chart
  when it reads only seeds and sources. An incremental model with a ``unique_key`` merges on
  it, without one it is rebuilt; either way from its full SELECT (``is_incremental()`` is
  false in Atlas: the filter is an optimisation dbt needs and Atlas does not run).
- **Generic tests** (``not_null``, ``unique``, ``accepted_values``, ``relationships``) become
  checks on the tested dataset, ``severity: error`` a ``fail`` check and ``warn`` a ``warn``
  check; **singular tests** a step storing their failing rows (as dbt's ``store_failures``)
  in ``dbt_test__<name>`` with a row-count check of at most 0 rows.

A node that cannot be translated (and every node that reads it) is left out *and reported*,
with the reason; so is each test, config or feature that is not translated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas.definitions.specs import by_name
from atlas.definitions.state import State, defaults
from atlas.sql import Catalog, validate_select

from . import dbtproject, seeds
from .render import MARKER_RE, Renderer, Untranslatable

TABLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
PIPELINE_RE = re.compile(r"[^A-Za-z0-9_.-]+")
TAG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")
CHART_HINTS = ("staging", "stg", "base", "intermediate", "int", "sources", "raw")
NAVIGATE_HINTS = ("marts", "mart", "reporting", "reports", "analytics", "core", "finance", "marketing", "metrics")
CHART_PREFIXES = ("stg_", "base_", "int_")
NAVIGATE_PREFIXES = ("fct_", "fact_", "dim_", "mart_", "rpt_", "agg_")
SEVERITY = {"error": "fail", "warn": "warn"}
GENERIC_TESTS = ("not_null", "unique", "accepted_values", "relationships")


@dataclass
class Node:
    """The report of one dbt node: where it went, what was noted, what was not translated."""

    resource: str
    name: str
    translated: bool = True
    target: str = ""  # layer.table
    how: str = ""
    problems: list[str] = field(default_factory=list)  # what of it is not translated
    notes: list[str] = field(default_factory=list)  # translated, with a difference worth knowing
    checks: list[str] = field(default_factory=list)


@dataclass
class Import:
    state: State
    pipeline: str
    nodes: list[Node]
    skipped: list[tuple[str, str]]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def complete(self) -> bool:
        return not self.skipped and all(n.translated and not n.problems for n in self.nodes)

    def report(self) -> str:
        lines = []
        for n in self.nodes:
            head = f"{n.resource} {n.name}"
            if n.translated:
                lines.append(f"{head} -> {n.target} ({n.how})")
            else:
                lines.append(f"{head}: NOT TRANSLATED")
            lines += [f"    check {c}" for c in n.checks]
            lines += [f"    not translated: {p}" for p in n.problems]
            lines += [f"    note: {p}" for p in n.notes]
        lines += [f"{what}: not imported: {why}" for what, why in self.skipped]
        done = sum(n.translated for n in self.nodes)
        parts = sum(len(n.problems) for n in self.nodes if n.translated)
        lines.append(f"{done} of {len(self.nodes)} node(s) translated into pipeline {self.pipeline};"
                     f" {len(self.nodes) - done} not, {parts} part(s) of translated nodes not,"
                     f" {len(self.skipped)} file(s) or feature(s) not imported.")
        return "\n".join(lines)


def short(name: str, limit: int) -> str:
    """``name`` within ``limit`` characters; a long one keeps its start and a hash, as dbt does."""
    if len(name) <= limit:
        return name
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{name[: limit - 9]}_{digest}"


class _Builder:
    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.kinds = by_name()
        self.state: State = {k: {} for k in self.kinds}
        self.position = 0

    def put(self, kind_name: str, key: tuple[str, ...], /, **values: Any) -> None:
        kind = kind_name
        base = defaults(self.kinds[kind])
        unknown = set(values) - set(base)
        if unknown:  # a field the models no longer have: a bug here, never a silent drop
            raise KeyError(f"{kind} has no field(s) {', '.join(sorted(unknown))}")
        self.state[kind][key] = {**base, **values}

    def step(self, name: str, **values: Any) -> None:
        self.position += 1
        self.put("steps", (self.pipeline, name), position=self.position, **values)


def import_project(path: Path, *, pipeline: str | None = None, vars: dict[str, Any] | None = None,
                   target_name: str = "atlas") -> Import:
    """Read the dbt project at ``path`` and translate it; :class:`dbtproject.DbtProjectError` if unreadable."""
    proj = dbtproject.read(Path(path))
    name = pipeline or PIPELINE_RE.sub("_", proj.name)[:100]
    return _Translation(proj, name, {**proj.vars, **(vars or {})}, target_name).run()


class _Translation:
    def __init__(self, proj: dbtproject.DbtProject, pipeline: str, vars: dict[str, Any], target_name: str) -> None:
        self.proj, self.vars, self.target_name = proj, vars, target_name
        self.b = _Builder(pipeline)
        self.pipeline = pipeline
        self.report: dict[str, Node] = {}
        self.skipped = list(proj.skipped)
        # what ref()/source() resolve to: key -> (layer, table, dataset name)
        self.relations: dict[tuple[str, str], tuple[str, str, str]] = {}
        self.unreadable: dict[tuple[str, str], str] = {}

    # --- the whole ---------------------------------------------------------------------------------
    def run(self) -> Import:
        self.b.put("pipelines", (self.pipeline,), description=f"Imported from the dbt project {self.proj.name}.")
        for node in self._of("seed"):
            self._seed(node)
        self._sources()
        renderer = Renderer(vars=self.vars, macro_files=self.proj.macro_files, resolve=self._resolve,
                            target_name=self.target_name)
        renderer.namespace["_project"] = self.proj.name
        self.skipped += [(err.split(":")[0], err.split(": ", 1)[1]) for err in renderer.macro_errors]
        rendered = self._render_models(renderer)
        self._models(rendered, renderer)
        for node in self._of("test"):
            self._singular_test(node, renderer)
        for node in [*self._of("seed"), *self._of("model")]:
            if self.report[node.name].translated:
                self._generic_tests(node, renderer)
        if not any(self.b.state["steps"]):
            self.b.state["pipelines"].clear()
        return Import(self.b.state, self.pipeline, list(self.report.values()), self.skipped)

    def _of(self, resource: str) -> list[dbtproject.DbtNode]:
        return [n for n in self.proj.nodes.values() if n.resource == resource]

    def _new(self, node: dbtproject.DbtNode) -> Node | None:
        report = self.report[node.name] = Node(node.resource, node.name)
        if node.config.get("enabled", True) is False:
            report.translated, report.how = False, "disabled"
            report.notes.append("enabled: false in its config; dbt does not build it either")
            return None
        return report

    def _tags(self, config: dict[str, Any], report: Node) -> list[str]:
        tags = [str(t) for t in config.get("tags", [])]
        bad = [t for t in tags if not TAG_RE.match(t)]
        if bad:
            report.problems.append(f"tags {', '.join(map(repr, bad))}: Atlas tags are 1-50 letters, digits, '_', '-', '.'")
        return [t for t in tags if TAG_RE.match(t)]

    # --- seeds and sources -------------------------------------------------------------------------
    def _file_relation(self, report: Node, *, source: str, raw: str, typed: str, table: str, path: Path,
                       location: str, config: dict[str, Any], tags: list[str]) -> tuple[str, str, str] | None:
        """A CSV file as dbt reads a seed: source, ingest to Explore, typed refine to Chart."""
        if not TABLE_RE.match(table):
            report.translated = False
            report.problems.append(f"table name {table!r}: Atlas tables are 1-48 lower-case letters, digits, '_'")
            return None
        delimiter = str(config.get("delimiter") or ",")
        try:
            columns = seeds.read_header_and_types(path, config.get("column_types") or {}, delimiter)
        except (OSError, UnicodeDecodeError, seeds.SeedError) as exc:
            report.translated = False
            report.problems.append(f"{path.name}: {exc}")
            return None
        options: dict[str, Any] = {"header": True}
        if delimiter != ",":
            options["delimiter"] = delimiter
        self.b.put("sources", (source,), kind="path", format="csv", location=location, options=options,
                   description=f"dbt {report.resource} {report.name} ({self.proj.name}).")
        self.b.put("datasets", (raw,), layer="explore", table=table, description=f"dbt {report.resource} {report.name}, as read.")
        self.b.put("datasets", (typed,), layer="chart", table=table,
                   description=f"dbt {report.resource} {report.name}, typed as dbt types it.")
        self.b.step(raw, kind="ingest", source=source, output=raw, write_mode="replace", tags=tags)
        self.b.step(typed, kind="refine", output=typed, sql=seeds.typed_select(table, columns), write_mode="replace",
                    tags=tags)
        report.target = f"chart.{table}"
        report.how = f"file {path.name} -> explore.{table} -> typed chart.{table}: " + ", ".join(
            f"{c} {t}" for c, t in columns)
        return ("chart", table, typed)

    def _seed(self, node: dbtproject.DbtNode) -> None:
        report = self._new(node)
        if report is None:
            return
        table = str(node.config.get("alias") or node.name)
        rel = self._file_relation(report, source=node.name, raw=f"{node.name}__raw", typed=node.name, table=table,
                                  path=node.path, location=str(node.path), config=node.config,
                                  tags=self._tags(node.config, report))
        if rel:
            self.relations[("ref", node.name)] = rel
        else:
            self.unreadable[("ref", node.name)] = f"seed {node.name} is not translated"

    def _sources(self) -> None:
        for (src, tbl), source in sorted(self.proj.sources.items()):
            key, name = ("source", f"{src}.{tbl}"), f"{src}__{tbl}"
            meta, location = source.meta, source.external.get("location") or source.meta.get("atlas_location")
            if isinstance(meta.get("atlas_table"), str):
                layer, _, table = meta["atlas_table"].partition(".")
                if layer in ("explore", "chart", "navigate") and TABLE_RE.match(table):
                    self.relations[key] = (layer, table, "")
                    continue
                self.unreadable[key] = f"source {src}.{tbl}: meta atlas_table must be layer.table"
                continue
            if not isinstance(location, str):
                self.unreadable[key] = (
                    f"source('{src}', '{tbl}') is a table dbt expects in the warehouse: give its file"
                    " (external: {location: ...}) or the Atlas table holding it (meta: {atlas_table: layer.table})"
                )
                continue
            report = self.report[name] = Node("source", f"{src}.{tbl}")
            path = (self.proj.root / location).resolve() if not Path(location).is_absolute() else Path(location)
            if path.suffix.lower() != ".csv":
                report.translated = False
                report.problems.append(f"{location}: only CSV files are typed as dbt would; give meta atlas_table")
                self.unreadable[key] = f"source {src}.{tbl} is not translated"
                continue
            rel = self._file_relation(report, source=name, raw=f"{name}__raw", typed=name,
                                      table=short(f"{src}__{source.identifier}".lower(), 48), path=path, location=str(path),
                                      config=meta, tags=[])
            if rel:
                self.relations[key] = rel
            else:
                self.unreadable[key] = f"source {src}.{tbl} is not translated"

    def _resolve(self, kind: str, key: str) -> str:
        if (kind, key) in self.relations:
            return self.relations[(kind, key)][1]
        if (kind, key) in self.unreadable:
            raise Untranslatable(self.unreadable[(kind, key)])
        if kind == "ref":
            node = self.proj.nodes.get(key)
            if node is None or node.resource == "test":
                raise Untranslatable(f"ref('{key}') names no model or seed of the project")
            return str(node.config.get("alias") or key)  # a model: its layer is chosen once all are rendered
        src, _, tbl = key.partition(".")
        raise Untranslatable(f"source('{src}', '{tbl}') is not defined in any properties file")

    # --- models --------------------------------------------------------------------------------------
    def _render_models(self, renderer: Renderer) -> dict[str, tuple[str, dict[str, Any], list[tuple[str, str]]]]:
        out = {}
        for node in self._of("model"):
            report = self._new(node)
            if report is None:
                self.unreadable[("ref", node.name)] = f"model {node.name} is disabled"
                continue
            try:
                out[node.name] = renderer.render(node.name, node.path.read_text(encoding="utf-8"), node.config)
            except Untranslatable as exc:
                report.translated = False
                report.problems.append(str(exc))
                self.unreadable[("ref", node.name)] = f"model {node.name} is not translated"
        return out

    def _layer(self, name: str, config: dict[str, Any], folder: tuple[str, ...], reads: list[tuple[str, str]]) -> str:
        chosen = config.get("atlas_layer") or (config.get("meta") or {}).get("atlas_layer")
        if chosen:
            return str(chosen)
        hints = [p.lower() for p in (*folder, str(config.get("schema") or ""))]
        for hint in reversed(hints):
            if hint in CHART_HINTS:
                return "chart"
            if hint in NAVIGATE_HINTS:
                return "navigate"
        if name.startswith(CHART_PREFIXES):
            return "chart"
        if name.startswith(NAVIGATE_PREFIXES):
            return "navigate"
        reads_models = any(k == "ref" and self.proj.nodes[n].resource == "model" for k, n in reads
                           if n in self.proj.nodes)
        return "navigate" if reads_models else "chart"

    def _models(self, rendered: dict[str, tuple[str, dict[str, Any], list[tuple[str, str]]]], renderer: Renderer) -> None:
        layers: dict[str, str] = {}
        for name, (_sql, config, reads) in rendered.items():
            node, report = self.proj.nodes[name], self.report[name]
            layer = self._layer(name, config, node.folder, reads)
            table = str(config.get("alias") or name)
            if layer not in ("chart", "navigate"):
                report.translated = False
                report.problems.append(f"atlas_layer {layer!r}: a model goes to chart or navigate")
            elif not TABLE_RE.match(table):
                report.translated = False
                report.problems.append(f"table name {table!r}: Atlas tables are 1-48 lower-case letters, digits, '_'")
            else:
                layers[name] = layer
                self.relations[("ref", name)] = (layer, table, name)
        # SQL Atlas refuses (what a step may not do, or not the same on both engines): named per model.
        catalog = Catalog.of({(layer, table) for layer, table, _ in self.relations.values()})
        for name, (sql, _config, reads) in rendered.items():
            if name in layers and all(key in self.relations for key in reads):  # else: reported below
                try:
                    validate_select(self._sql(sql, name), catalog)
                except ValueError as exc:  # SQLRefused, or what the parser could not read
                    self.report[name].translated = False
                    self.report[name].problems.append(f"Atlas refuses its SQL: {exc}")
                    self.unreadable[("ref", name)] = f"model {name} is not translated"
                    self.relations.pop(("ref", name), None)
        # A model reading what is not translated, or a layer it may not read, is not translated either.
        changed = True
        while changed:
            changed = False
            for name, (_sql, _config, reads) in rendered.items():
                report = self.report[name]
                if not report.translated:
                    continue
                for key in reads:
                    why = None
                    if key not in self.relations:
                        why = self.unreadable.get(key, f"{key[0]}('{key[1]}') is not translated")
                    elif layers[name] == "chart" and self.relations[key][0] == "navigate":
                        why = (f"a chart model cannot read the navigate model {key[1]}: give it"
                               " meta: {atlas_layer: navigate}, or the other chart")
                    elif layers[name] == "navigate" and self.relations[key][0] == "explore":
                        why = f"a navigate model cannot read explore.{self.relations[key][1]}: read a chart table"
                    if why:
                        report.translated = False
                        report.problems.append(f"reads {key[1]}: {why}")
                        self.unreadable[("ref", name)] = f"model {name} is not translated"
                        self.relations.pop(("ref", name), None)
                        changed = True
                        break
        for name, (sql, config, _reads) in rendered.items():
            report = self.report[name]
            if not report.translated:
                continue
            layer, table, _ = self.relations[("ref", name)]
            kind = "refine" if layer == "chart" else "aggregate"
            mode, keys = self._write_mode(config, report)
            self.b.put("datasets", (name,), layer=layer, table=table,
                       description=str(self.proj.nodes[name].properties.get("description") or "")[:10000])
            self.b.step(name, kind=kind, output=name, sql=self._sql(sql, name), write_mode=mode, merge_keys=keys,
                        tags=self._tags(config, report))
            report.target, report.how = f"{layer}.{table}", f"{kind}, {mode}" + (f" on {keys}" if keys else "")

    def _write_mode(self, config: dict[str, Any], report: Node) -> tuple[str, str]:
        materialized = str(config.get("materialized") or "view")
        if materialized == "incremental":
            key = config.get("unique_key")
            keys = [key] if isinstance(key, str) else list(key or [])
            report.notes.append("incremental: built from its full SELECT each run (is_incremental() is false in"
                                " Atlas), " + ("merged on its unique_key" if keys else "replacing the table: no"
                                               " unique_key to merge on"))
            if keys:
                return "merge", ", ".join(str(k) for k in keys)
            return "replace", ""
        if materialized in ("view", "ephemeral", "materialized_view"):
            report.notes.append(f"materialized {materialized}: a table Atlas rebuilds each run")
        elif materialized != "table":
            report.problems.append(f"materialized {materialized!r} is unknown to Atlas: built as a table")
        return "replace", ""

    def _sql(self, sql: str, name: str) -> str:
        def relation(m: re.Match) -> str:
            key = ("ref", name) if m[1] == "this" else (m[1], m[2])
            layer, table, _ = self.relations[key]
            return f"{layer}.{table}"

        return MARKER_RE.sub(relation, sql).strip().rstrip(";").strip() + "\n"

    # --- tests ---------------------------------------------------------------------------------------
    def _singular_test(self, node: dbtproject.DbtNode, renderer: Renderer) -> None:
        report = self._new(node)
        if report is None:
            return
        try:
            sql, config, reads = renderer.render(node.name, node.path.read_text(encoding="utf-8"), node.config)
        except Untranslatable as exc:
            report.translated = False
            report.problems.append(str(exc))
            return
        missing = [k for k in reads if k not in self.relations]
        if missing:
            report.translated = False
            report.problems += [f"reads {k[1]}: {self.unreadable.get(k, 'not translated')}" for k in missing]
            return
        layers = {self.relations[k][0] for k in reads}
        if "navigate" in layers and "explore" in layers:
            report.translated = False
            report.problems.append("it reads both explore and navigate tables; no Atlas step may")
            return
        layer = "navigate" if "navigate" in layers else "chart"
        dataset = table = short(f"dbt_test__{node.name}".lower(), 48)
        try:
            validate_select(self._sql(sql, node.name), Catalog.of({(lay, tab) for lay, tab, _ in self.relations.values()}))
        except ValueError as exc:
            report.translated = False
            report.problems.append(f"Atlas refuses its SQL: {exc}")
            return
        severity = self._severity(config, report)
        if severity is None:
            report.translated = False
            return
        self.relations[("ref", node.name)] = (layer, table, dataset)
        self.b.put("datasets", (dataset,), layer=layer, table=table,
                   description=f"The failing rows of the dbt test {node.name} (dbt's store_failures).")
        self.b.step(dataset, kind="refine" if layer == "chart" else "aggregate", output=dataset,
                    sql=self._sql(sql, node.name), write_mode="replace", tags=self._tags(config, report))
        check = short(node.name, 100)
        self.b.put("checks", (dataset, check), kind="row_count", params={"max": 0}, severity=severity,
                   description=f"dbt singular test {node.name}: it fails when its query returns rows.")
        report.target, report.how = f"{layer}.{table}", "its failing rows, with a row-count check of at most 0"
        report.checks.append(f"{dataset}: {check} (row_count max 0, {severity})")

    def _severity(self, config: dict[str, Any], report: Node) -> str | None:
        severity = str(config.get("severity") or "error").lower()
        if severity not in SEVERITY:
            report.problems.append(f"severity {severity!r}: dbt knows error and warn")
            return None
        for key, default in (("warn_if", "!= 0"), ("error_if", "!= 0")):
            if str(config.get(key, default)).replace(" ", "") != default.replace(" ", ""):
                report.problems.append(f"{key} {config[key]!r}: Atlas fails or warns on any failing row; not translated")
                return None
        if config.get("where"):
            report.problems.append(f"where {config['where']!r}: a test on a subset of rows is not translated")
            return None
        if config.get("fail_calc", "count(*)") != "count(*)":
            report.problems.append("fail_calc: not translated")
            return None
        if config.get("limit") is not None:
            report.notes.append("limit: Atlas counts every failing row")
        return SEVERITY[severity]

    def _generic_tests(self, node: dbtproject.DbtNode, renderer: Renderer) -> None:
        report, props = self.report[node.name], node.properties
        _layer, _table, dataset = self.relations[("ref", node.name)]
        entries: list[tuple[str | None, Any]] = [(None, t) for t in props.get("data_tests") or props.get("tests") or []]
        for column in props.get("columns") or []:
            entries += [(column.get("name"), t) for t in column.get("data_tests") or column.get("tests") or []]
        used: set[str] = set()
        for column, entry in entries:
            test, args = (entry, {}) if isinstance(entry, str) else next(iter(entry.items())) if isinstance(entry, dict) and len(entry) == 1 else (None, None)
            if test is None or not isinstance(args or {}, dict):
                report.problems.append(f"test {entry!r}: cannot be read")
                continue
            args = dict(args or {})
            config = {**{k: v for k, v in args.items() if k in ("severity", "where", "warn_if", "error_if", "limit",
                                                             "enabled", "fail_calc", "store_failures", "tags")},
                      **(args.pop("config", None) or {})}
            args = {**{k: v for k, v in args.items() if k not in config and k != "arguments"},
                    **(args.get("arguments") or {})}
            column = args.pop("column_name", column)
            given_name = args.pop("name", None)  # a test named in the properties file keeps its name
            label = f"test {test}" + (f" on {column}" if column else "")
            config = dbtproject.merge_config(self.proj.test_config, config)
            if config.get("enabled", True) is False:
                report.notes.append(f"{label}: disabled")
                continue
            if test not in GENERIC_TESTS:
                report.problems.append(f"{label}: only not_null, unique, accepted_values and relationships are translated")
                continue
            if not column:
                report.problems.append(f"{label}: it names no column")
                continue
            probe = Node("test", label)
            severity = self._severity(config, probe)
            report.notes += [f"{label}: {n}" for n in probe.notes]
            if severity is None:
                report.problems += [f"{label}: {p}" for p in probe.problems]
                continue
            params: dict[str, Any] = {}
            if test == "accepted_values":
                values = args.get("values")
                if not isinstance(values, list) or not values:
                    report.problems.append(f"{label}: it gives no values")
                    continue
                if args.get("quote", True) is False and not all(isinstance(v, int | float) for v in values):
                    report.problems.append(f"{label}: quote: false with SQL expressions as values is not translated")
                    continue
                params["values"] = values if all(isinstance(v, int | float) for v in values) else [str(v) for v in values]
                params["count"] = "values"  # as dbt counts: distinct failing values
            elif test == "relationships":
                to, to_field = args.get("to"), args.get("field")
                target = self._relation_of(str(to or ""), renderer)
                if target is None or not to_field:
                    report.problems.append(f"{label}: to {to!r} is not a translated model, seed or source")
                    continue
                params = {"dataset": target, "column": str(to_field)}
            kind = "referential" if test == "relationships" else test
            check = (short(re.sub(r"[^A-Za-z0-9_]+", "_", str(given_name)), 100) if given_name
                     else self._check_name(test, node.name, {**args, "column_name": column}, used))
            self.b.put("checks", (dataset, check), kind=kind, columns=[str(column)], params=params, severity=severity,
                       description=f"dbt test {test} of {node.name}.{column}.")
            report.checks.append(f"{check} ({kind}, {severity})")

    def _relation_of(self, expr: str, renderer: Renderer) -> str | None:
        try:
            text, _, reads = renderer.render("_relationships", "{{ " + expr + " }}" if "{{" not in expr else expr, {})
        except Untranslatable:
            return None
        if len(reads) != 1 or reads[0] not in self.relations:
            return None
        return self.relations[reads[0]][2] or None

    @staticmethod
    def _check_name(test: str, model: str, args: dict[str, Any], used: set[str]) -> str:
        """dbt's name for the test (``synthesize_generic_test_names``): its full name, else its short one."""
        flat: list[str] = []
        for key in sorted(args):
            value = args[key]
            parts = list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list | tuple) else [value]
            flat += [re.sub(r"[^0-9a-zA-Z_]+", "_", str(p)) for p in parts]
        name = f"{test}_{model}_{'__'.join(flat)}"
        if len(name) > 100:
            name = f"{test}_{model}"[:30] + "_" + hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
        base, n = name, 2
        while name in used:
            name, n = short(f"{base}_{n}", 100), n + 1
        used.add(name)
        return name
