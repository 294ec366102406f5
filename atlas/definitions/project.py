"""A project directory: Atlas's definitions as YAML files under version control.

Layout (``manage.py atlas export DIR`` writes it; ``plan`` and ``apply`` read it)::

    atlas.yml                  # {"version": 1}
    sources.yml                # a list of sources
    datasets.yml               # a list of datasets, each with its ``checks``, ``column_policies``,
                               # ``retention`` and ``processing_record``
    alert_rules.yml            # notification rules (secrets by reference: env:NAME)
    pipelines/<name>.yml       # one pipeline, with its ``steps``
    pipelines/<name>/<step>.sql  # a step's SQL (``sql_file`` in the step)

Which kinds exist, which are written one file each and which nest inside another
(``steps`` in a pipeline, ``checks`` in a dataset) is each app's contribution
(``atlas.definitions.specs``). A field equal to its default is left out of the files.
Every file is checked against the JSON Schema (``schema.json``, made by
``manage.py atlas schema``) before anything is compared; an error names its file and path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import schema as project_schema
from .specs import Kind, kinds
from .state import Key, State, defaults

VERSION = 1
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class ProjectError(ValueError):
    """The project directory cannot be read; the message names the file and what is wrong."""


# --- writing --------------------------------------------------------------------------------------
def write(state: State, root: Path) -> list[Path]:
    """Write ``state`` as a project under ``root``; the files written.

    A kind written one file each has its folder's ``.yml`` files replaced, so that an object
    deleted since the last export leaves no file behind.
    """
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    texts: list[tuple[Path, str]] = []
    _dump(root / "atlas.yml", {"version": VERSION}, written)
    for kind in (k for k in kinds() if k.parent is None):
        entries = [(key, _entry(kind, key, state, root, texts)) for key in sorted(state.get(kind.name, {}))]
        if kind.one_file_each:
            folder = root / kind.name
            for old in folder.glob("*.yml") if folder.exists() else ():
                old.unlink()
            for key, entry in entries:
                _dump(folder / f"{_file_name(key[-1])}.yml", entry, written)
        else:
            _dump(root / f"{kind.name}.yml", [entry for _, entry in entries], written)
    for path, text in texts:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def _entry(kind: Kind, key: Key, state: State, root: Path, texts: list[tuple[Path, str]]) -> dict[str, Any]:
    """An object's entry: its key, the fields that differ from their default, its children's entries."""
    base = defaults(kind)
    entry: dict[str, Any] = dict(zip(kind.key, kind.own(key), strict=True))
    for name, value in state[kind.name][key].items():
        if value == base.get(name):
            continue
        if name in kind.files and isinstance(value, str) and value:
            rel = Path(*map(_file_name, key[:-1]), _file_name(key[-1]) + kind.files[name])
            texts.append((root / kind_root(kind) / rel, value if value.endswith("\n") else value + "\n"))
            entry[f"{name}_file"] = rel.as_posix()
            continue
        entry[name] = value
    for child in kinds():
        if child.parent and child.parent[1] == kind.name:
            rows = [_entry(child, k, state, root, texts) for k in sorted(state.get(child.name, {}))
                    if child.parent_part(k) == key]
            if rows:
                entry[child.name] = rows[0] if child.single else rows
    return entry


def kind_root(kind: Kind) -> str:
    """The folder a kind's extra files live under: its top-level ancestor's."""
    top = kind
    names = {k.name: k for k in kinds()}
    while top.parent is not None:
        top = names[top.parent[1]]
    return top.name


def _file_name(name: str) -> str:
    if not SAFE_NAME_RE.match(name):
        raise ProjectError(f"{name!r} cannot name a file: use letters, digits, '_', '-' and '.'.")
    return name


def _dump(path: Path, data: Any, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    written.append(path)


# --- reading --------------------------------------------------------------------------------------
def read(root: Path) -> State:
    """The project under ``root`` as a state; :class:`ProjectError` names the first file that is wrong."""
    if not (root / "atlas.yml").is_file():
        raise ProjectError(f"{root} is not an Atlas project: it has no atlas.yml.")
    head = _load(root / "atlas.yml")
    if not isinstance(head, dict) or head.get("version") != VERSION:
        raise ProjectError(f"{root / 'atlas.yml'}: version must be {VERSION}.")
    validator = jsonschema.Draft202012Validator(project_schema.build())
    state: State = {k.name: {} for k in kinds()}
    for kind in (k for k in kinds() if k.parent is None):
        if kind.one_file_each:
            folder = root / kind.name
            files = sorted(folder.glob("*.yml")) if folder.is_dir() else []
            for path in files:
                entry = _load(path)
                _validate(validator, kind, entry, path)
                if str(entry.get(kind.key[-1])) != path.stem:
                    raise ProjectError(f"{path}: its {kind.key[-1]} is {entry.get(kind.key[-1])!r}, the file says {path.stem!r}.")
                _take(kind, entry, (), state, root, path)
        else:
            path = root / f"{kind.name}.yml"
            entries = _load(path) if path.is_file() else []
            entries = entries if entries is not None else []
            if not isinstance(entries, list):
                raise ProjectError(f"{path}: expected a list of {kind.name}.")
            for i, entry in enumerate(entries):
                _validate(validator, kind, entry, path, f"[{i}]")
                _take(kind, entry, (), state, root, path)
    return state


def _take(kind: Kind, entry: dict[str, Any], parent: Key, state: State, root: Path, path: Path) -> None:
    key = (*parent, *(str(entry[f]) for f in kind.key))
    if key in state[kind.name]:
        raise ProjectError(f"{path}: {kind.name} {'/'.join(key)!r} is defined twice.")
    values = defaults(kind)
    children = {c.name: c for c in kinds() if c.parent and c.parent[1] == kind.name}
    for name, value in entry.items():
        if name in kind.key or name in children:
            continue
        if name.endswith("_file") and name[:-5] in kind.files:
            file = (root / kind_root(kind) / value).resolve()
            if root.resolve() not in file.parents or not file.is_file():
                raise ProjectError(f"{path}: {name} {value!r} is not a file of the project.")
            values[name[:-5]] = file.read_text().rstrip("\n")
        else:
            values[name] = value
    state[kind.name][key] = values
    for name, child in children.items():
        subs = entry.get(name)
        for sub in ([] if subs is None else [subs]) if child.single else subs or []:
            _take(child, sub, key, state, root, path)


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProjectError(f"{path}: cannot be read as YAML: {exc}") from None


def _validate(validator, kind: Kind, entry: Any, path: Path, where: str = "") -> None:
    errors = sorted(validator.iter_errors({kind.name: [entry]}), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in list(e.absolute_path)[2:])
        raise ProjectError(f"{path}{where}{(' at ' + at) if at else ''}: {e.message}")
