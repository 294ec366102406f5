"""A dbt project's files: its nodes (models, seeds, singular tests), properties and configs.

Configs resolve as dbt resolves them, from least to most specific: ``dbt_project.yml``'s
``models:`` / ``seeds:`` / ``data_tests:`` tree (``+key`` at the project and folder levels),
then the node's ``config:`` in a properties file (``schema.yml``), then ``{{ config() }}`` in
the SQL (applied when it is rendered). ``tags`` add up and ``meta`` merges, as in dbt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class DbtProjectError(ValueError):
    """The directory is not a dbt project Atlas can read; the message names the file."""


NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Keys under ``models:`` whose value is a dict but is a config, not a folder.
DICT_CONFIGS = frozenset({"meta", "column_types", "persist_docs", "grants", "docs", "contract", "labels"})


@dataclass
class DbtNode:
    """One resource: a model, a seed or a singular test, with its file and resolved config."""

    resource: str  # model | seed | test
    name: str
    path: Path  # the file
    folder: tuple[str, ...]  # its folders below the resource path
    config: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)  # its entry in a properties file


@dataclass
class DbtSource:
    source: str
    table: str
    identifier: str
    meta: dict[str, Any]
    external: dict[str, Any]
    columns: list[dict[str, Any]]
    path: Path


@dataclass
class DbtProject:
    root: Path
    name: str
    vars: dict[str, Any]
    nodes: dict[str, DbtNode]  # by name (dbt names are unique across models, seeds and tests)
    sources: dict[tuple[str, str], DbtSource]
    macro_files: list[Path]
    skipped: list[tuple[str, str]]  # (file or feature, why it is not imported)
    test_config: dict[str, Any] = field(default_factory=dict)  # data_tests: at the project level


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DbtProjectError(f"{path}: cannot be read as YAML: {exc}") from None


def _paths(doc: dict, key: str, default: str) -> list[str]:
    value = doc.get(key, [default])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DbtProjectError(f"dbt_project.yml: {key} must be a list of folders.")
    return value


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """dbt's config merge: ``tags`` add up, ``meta`` merges key by key, anything else is replaced."""
    out = dict(base)
    for key, value in extra.items():
        key = key.lstrip("+")
        if key == "tags":
            tags = [value] if isinstance(value, str) else list(value or [])
            out["tags"] = [*out.get("tags", []), *(t for t in tags if t not in out.get("tags", []))]
        elif key == "meta" and isinstance(value, dict):
            out["meta"] = {**out.get("meta", {}), **value}
        else:
            out[key] = value
    return out


def _tree_config(tree: Any, folder: tuple[str, ...]) -> dict[str, Any]:
    """The config a ``dbt_project.yml`` tree gives a node: ``folder`` is its folders then its name."""
    config: dict[str, Any] = {}
    level = tree if isinstance(tree, dict) else {}
    for depth in range(len(folder) + 1):
        config = merge_config(config, {
            k: v for k, v in level.items() if k.startswith("+") or not isinstance(v, dict) or k in DICT_CONFIGS
        })
        if depth == len(folder):
            break
        nxt = level.get(folder[depth])
        if not isinstance(nxt, dict) or folder[depth].startswith("+"):
            break
        level = nxt
    return config


def read(root: Path) -> DbtProject:
    """The dbt project under ``root``; :class:`DbtProjectError` names what cannot be read."""
    root = root.resolve()
    head_path = root / "dbt_project.yml"
    if not head_path.is_file():
        raise DbtProjectError(f"{root} is not a dbt project: it has no dbt_project.yml.")
    head = _load_yaml(head_path)
    if not isinstance(head, dict) or not isinstance(head.get("name"), str):
        raise DbtProjectError("dbt_project.yml: it must be a mapping with the project's name.")
    name = head["name"]
    skipped: list[tuple[str, str]] = []
    if (root / "packages.yml").is_file() or (root / "dependencies.yml").is_file():
        skipped.append(("packages.yml", "packages are not installed: their macros and models are unknown to Atlas"))

    def tree(section: str) -> Any:
        top = head.get(section) or {}
        if section == "data_tests" and not top:
            top = head.get("tests") or {}
        return top.get(name, {}) if isinstance(top, dict) and isinstance(top.get(name), dict) else top

    nodes: dict[str, DbtNode] = {}

    def add(node: DbtNode) -> None:
        if node.name in nodes:
            raise DbtProjectError(f"{node.path}: a {nodes[node.name].resource} named {node.name!r} already exists"
                                  f" ({nodes[node.name].path.relative_to(root)}); dbt names are unique.")
        nodes[node.name] = node

    property_files: list[Path] = []
    for folder in _paths(head, "model-paths", "models"):
        base = root / folder
        for path in sorted(base.rglob("*")) if base.is_dir() else []:
            rel = path.relative_to(base)
            if path.suffix == ".sql":
                add(DbtNode("model", path.stem, path, rel.parts[:-1], _tree_config(tree("models"), (*rel.parts[:-1], path.stem))))
            elif path.suffix == ".py":
                skipped.append((str(path.relative_to(root)), "Python models are not translated (Atlas steps are SQL)"))
            elif path.suffix in (".yml", ".yaml"):
                property_files.append(path)
    for folder in _paths(head, "seed-paths", "seeds"):
        base = root / folder
        for path in sorted(base.rglob("*")) if base.is_dir() else []:
            rel = path.relative_to(base)
            if path.suffix == ".csv":
                add(DbtNode("seed", path.stem, path, rel.parts[:-1], _tree_config(tree("seeds"), (*rel.parts[:-1], path.stem))))
            elif path.suffix in (".yml", ".yaml"):
                property_files.append(path)
    for folder in _paths(head, "test-paths", "tests"):
        base = root / folder
        for path in sorted(base.rglob("*.sql")) if base.is_dir() else []:
            rel = path.relative_to(base)
            if rel.parts[0] == "generic":
                skipped.append((str(path.relative_to(root)), "custom generic tests are not translated"))
                continue
            add(DbtNode("test", path.stem, path, rel.parts[:-1], _tree_config(tree("data_tests"), (*rel.parts[:-1], path.stem))))
    macro_files = []
    for folder in _paths(head, "macro-paths", "macros"):
        base = root / folder
        macro_files += sorted(base.rglob("*.sql")) if base.is_dir() else []
        property_files += sorted(p for p in base.rglob("*.yml")) if base.is_dir() else []
    for folder in _paths(head, "snapshot-paths", "snapshots"):
        for path in sorted((root / folder).rglob("*.sql")) if (root / folder).is_dir() else []:
            skipped.append((str(path.relative_to(root)), "snapshots are not translated"))
    for folder in _paths(head, "analysis-paths", "analyses"):
        for path in sorted((root / folder).rglob("*.sql")) if (root / folder).is_dir() else []:
            skipped.append((str(path.relative_to(root)), "analyses are compiled only by dbt, never run: not imported"))

    sources: dict[tuple[str, str], DbtSource] = {}
    for path in property_files:
        doc = _load_yaml(path) or {}
        if not isinstance(doc, dict):
            raise DbtProjectError(f"{path}: a properties file must be a mapping.")
        for section, resource in (("models", "model"), ("seeds", "seed")):
            for entry in doc.get(section) or []:
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                    raise DbtProjectError(f"{path}: each of {section} needs a name.")
                node = nodes.get(entry["name"])
                if node is None or node.resource != resource:
                    raise DbtProjectError(f"{path}: {section} names {entry['name']!r}, which has no file.")
                node.properties = entry
                node.config = merge_config(node.config, entry.get("config") or {})
        for src in doc.get("sources") or []:
            if not isinstance(src, dict) or not isinstance(src.get("name"), str):
                raise DbtProjectError(f"{path}: each source needs a name.")
            for table in src.get("tables") or []:
                if not isinstance(table, dict) or not isinstance(table.get("name"), str):
                    raise DbtProjectError(f"{path}: each table of source {src['name']!r} needs a name.")
                meta = {**(src.get("meta") or {}), **(table.get("meta") or {})}
                sources[(src["name"], table["name"])] = DbtSource(
                    src["name"], table["name"], table.get("identifier") or table["name"], meta,
                    table.get("external") or {}, table.get("columns") or [], path,
                )
    for node in nodes.values():
        if not NAME_RE.match(node.name):
            raise DbtProjectError(f"{node.path}: {node.name!r} is not a name dbt accepts.")
    return DbtProject(root, name, dict(head.get("vars") or {}), nodes, sources, macro_files, skipped,
                      _tree_config(tree("data_tests"), ()))
