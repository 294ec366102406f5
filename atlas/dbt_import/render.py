"""Rendering a dbt node's SQL: a real Jinja2 environment with dbt's context, implemented by Atlas.

What dbt's context offers and a static translation can mean is here: ``ref``, ``source``,
``config`` (and ``config.get``), ``var``, ``is_incremental`` (false: Atlas builds an
incremental model from its full SELECT, see ``translate``), ``this``, ``target``,
``env_var`` with a default, ``return``, ``log``, ``exceptions.raise_compiler_error``,
``modules.datetime`` / ``modules.re``, ``tojson`` / ``fromjson``, and the project's own
macros (each compiled alone, so that they call one another in any order, as in dbt).
Relations render as markers (``⟦ref:name⟧``) that ``translate`` replaces with the
``layer.table`` Atlas chose; what only a live warehouse answers (``run_query``,
``adapter``, a package's macros) is an :class:`Untranslatable` error naming it.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

MARKER_RE = re.compile(r"⟦(ref|source|this):([^⟧]*)⟧")
MACRO_RE = re.compile(r"\{%-?\s*macro\s+([A-Za-z_]\w*)\s*\(.*?\{%-?\s*endmacro\s*-?%\}", re.S)
TEST_BLOCK_RE = re.compile(r"\{%-?\s*(test|materialization|snapshot)\s+([A-Za-z_]\w*)", re.S)


PACKAGE = "is a package's macro: packages are not installed, their macros are unknown to Atlas"


class Untranslatable(Exception):
    """The node uses something a static translation cannot mean; the message says what."""


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class Relation(str):
    """What ``ref()`` / ``source()`` / ``this`` return: a marker that also answers ``.identifier``."""

    def __new__(cls, kind: str, key: str, identifier: str) -> Relation:
        obj = super().__new__(cls, f"⟦{kind}:{key}⟧")
        obj.identifier = obj.name = obj.table = identifier
        return obj

    def include(self, **_: Any) -> Relation:
        return self


class _Config:
    """``config(...)`` records a node's config; ``config.get`` / ``config.require`` read it."""

    def __init__(self, renderer: Renderer) -> None:
        self._r = renderer

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        if args and isinstance(args[0], dict):
            kwargs = {**args[0], **kwargs}
        self._r.config_calls.append(kwargs)
        return ""

    def get(self, key: str, default: Any = None) -> Any:
        return self._r.current_config().get(key, default)

    def require(self, key: str) -> Any:
        config = self._r.current_config()
        if key not in config:
            raise Untranslatable(f"config.require({key!r}): the node has no {key} config.")
        return config[key]


class _Unsupported:
    """A dbt global Atlas cannot mean statically (``adapter``, ``graph``): any use names it."""

    def __init__(self, name: str, why: str = "needs a live warehouse or dbt's graph; Atlas translates statically") -> None:
        self._name, self._why = name, why

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith(("_", "jinja_")) or attr in ("unsafe_callable", "alters_data"):  # the sandbox's own questions
            raise AttributeError(attr)
        raise Untranslatable(f"{self._name}.{attr} {self._why}.")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise Untranslatable(f"{self._name}() {self._why}.")


def _raise_compiler_error(message: str = "") -> None:
    raise Untranslatable(f"the project raised a compiler error: {message}")


class _Undefined(jinja2.StrictUndefined):
    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if self._undefined_hint:  # the sandbox's refusal ("access to attribute ... is unsafe")
            raise Untranslatable(f"refused: {self._undefined_hint}")
        raise Untranslatable(
            f"{self._undefined_name!r} is undefined here (a package's macro, or a dbt function Atlas does not"
            " implement)"
        )

    __str__ = __iter__ = __len__ = __call__ = __getattr__ = _fail_with_undefined_error  # type: ignore[assignment]


class Renderer:
    """Renders nodes of one project; ``resolve`` tells ``ref``/``source`` what exists."""

    def __init__(self, *, vars: dict[str, Any], macro_files: list[Path], resolve: Callable[[str, str], str],
                 target_name: str = "atlas") -> None:
        self.vars = vars
        self.resolve = resolve  # (kind, key) -> identifier; raises Untranslatable when unknown
        self.env = SandboxedEnvironment(
            extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"], undefined=_Undefined, keep_trailing_newline=True
        )
        self.env.filters.update(as_bool=_as_bool, as_number=_as_number, as_text=str, as_native=lambda v: v)
        self.config_calls: list[dict[str, Any]] = []
        self.base_config: dict[str, Any] = {}
        self.node_name = ""
        self.refs: list[tuple[str, str]] = []  # what the node read: ("ref", name) | ("source", "s.t")
        self.namespace: dict[str, Any] = {
            "ref": self._ref, "source": self._source, "config": _Config(self), "var": self._var,
            "is_incremental": lambda: False, "env_var": self._env_var, "return": self._return,
            "log": lambda *a, **k: "", "print": lambda *a, **k: "",
            "exceptions": {"raise_compiler_error": _raise_compiler_error, "warn": lambda *a, **k: ""},
            "modules": {"datetime": datetime, "re": re}, "tojson": json.dumps, "fromjson": json.loads,
            "zip": zip, "set": set, "execute": True, "flags": {"FULL_REFRESH": False},
            "target": {"name": target_name, "type": "postgres", "schema": "atlas", "database": "atlas",
                       "profile_name": "atlas", "threads": 1},
            "run_query": _Unsupported("run_query"), "statement": _Unsupported("statement"),
            "adapter": _Unsupported("adapter"), "graph": _Unsupported("graph"), "load_result": _Unsupported("load_result"),
            "dbt_utils": _Unsupported("dbt_utils", PACKAGE), "dbt": _Unsupported("dbt", "is dbt's own macro namespace: not implemented"),
        }
        self.macro_errors: list[str] = []
        for path in macro_files:
            self._load_macros(path)

    # --- macros ------------------------------------------------------------------------------------
    def _load_macros(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        for m in TEST_BLOCK_RE.finditer(text):
            self.macro_errors.append(f"{path.name}: {{% {m[1]} {m[2]} %}} blocks are not translated")
        for m in MACRO_RE.finditer(text):
            try:
                module = self.env.from_string(m[0]).make_module(vars=self.namespace, shared=True)
            except jinja2.TemplateError as exc:
                self.macro_errors.append(f"{path.name}: macro {m[1]} cannot be compiled: {exc}")
                continue
            macro = getattr(module, m[1], None)
            if isinstance(macro, jinja2.runtime.Macro):
                self.namespace[m[1]] = _returning(macro)

    # --- dbt's context functions ------------------------------------------------------------------
    def _ref(self, *args: str, **kwargs: Any) -> Relation:
        if not args or len(args) > 2 or not all(isinstance(a, str) for a in args):
            raise Untranslatable(f"ref{args!r}: give a model or seed name (and optionally its package).")
        if len(args) == 2 and args[0] != self.namespace.get("_project"):
            raise Untranslatable(f"ref({args[0]!r}, {args[1]!r}): models of other packages are not imported.")
        name = args[-1]
        self.refs.append(("ref", name))
        return Relation("ref", name, self.resolve("ref", name))

    def _source(self, source: str, table: str) -> Relation:
        key = f"{source}.{table}"
        self.refs.append(("source", key))
        return Relation("source", key, self.resolve("source", key))

    def _var(self, name: str, default: Any = None, *extra: Any) -> Any:
        if name in self.vars:
            return self.vars[name]
        if default is None and not extra:
            raise Untranslatable(f"var({name!r}) has no value: set it in dbt_project.yml vars or with --vars.")
        return default

    @staticmethod
    def _env_var(name: str, default: Any = None) -> Any:
        if default is None:
            raise Untranslatable(
                f"env_var({name!r}) without a default: Atlas does not copy environment values into definitions."
            )
        return default

    @staticmethod
    def _return(value: Any) -> None:
        raise _Return(value)

    def current_config(self) -> dict[str, Any]:
        from .dbtproject import merge_config

        config = dict(self.base_config)
        for call in self.config_calls:
            config = merge_config(config, call)
        return config

    # --- rendering ---------------------------------------------------------------------------------
    def render(self, name: str, sql: str, config: dict[str, Any]) -> tuple[str, dict[str, Any], list[tuple[str, str]]]:
        """``sql`` rendered; the node's config after its ``config()`` calls; what it read."""
        self.node_name, self.base_config, self.config_calls, self.refs = name, config, [], []
        self.namespace["this"] = Relation("this", name, config.get("alias") or name)
        self.namespace["model"] = {"name": name, "config": config}
        try:
            text = self.env.from_string(sql, globals=self.namespace).render()
        except Untranslatable:
            raise
        except _Return as ret:  # a top-level return(): dbt renders its value
            text = str(ret.value)
        except jinja2.TemplateError as exc:
            raise Untranslatable(f"Jinja error{f' at line {exc.lineno}' if getattr(exc, 'lineno', None) else ''}:"
                                 f" {exc.message}") from None
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise Untranslatable(f"rendering failed: {type(exc).__name__}: {exc}") from None
        return text, self.current_config(), list(dict.fromkeys(self.refs))


def _returning(macro: jinja2.runtime.Macro) -> Callable[..., Any]:
    """A macro whose ``return(value)`` gives ``value`` (dbt's), else its rendered text."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return macro(*args, **kwargs)
        except _Return as ret:
            return ret.value

    call.__name__ = macro.name
    return call


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() == "true"


def _as_number(value: Any) -> Any:
    text = str(value).strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
