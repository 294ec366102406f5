"""Row values out of what leaves Atlas: one scrubber for errors, tracebacks, logs and bodies (issue 15).

Database errors quote the value that failed (PostgreSQL ``invalid input syntax for type
integer: "alice"``, ``Key (email)=(ann@example.com) already exists``, ``Failing row contains
(...)``, ``COPY t, line 2, column email: "..."``; DuckDB ``Could not convert string
'ann@example.com' to INT32``, ``Duplicate key "email: ann@..."``, ``Original Line: ...``,
``Input: ...``). Stored on a step run, they reach Analysts and Auditors, the external lineage
server, logs and alerts.

Allowlist, not a blocklist: what is kept is the error's structure (its class, the fixed text
of the engine's message, names the engine marks as names: a column, a table, a constraint,
a type), the line and row numbers; every quoted literal, key value, row content and input
echo is replaced by :data:`VALUE`. What is not recognised as a name is hidden.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

VALUE = "<value>"
ROW = "<row>"

# Whole-line and template rules: the value runs to a fixed text (or to the end of the line),
# so a value holding a quote (O'Brien, a "quoted" word) is replaced whole.
_TEMPLATES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        # PostgreSQL, primary messages
        (r'(invalid input syntax for type [^:\n]+: )".*"', rf'\1"{VALUE}"'),
        (r'(invalid input value for enum [^:\n]+: )".*"', rf'\1"{VALUE}"'),
        (r'(value )".*"( is out of range for type)', rf'\1"{VALUE}"\2'),
        (r'(field value out of range: )".*"', rf'\1"{VALUE}"'),
        (r'(invalid value )".*"( for ")', rf'\1"{VALUE}"\2'),
        # PostgreSQL, DETAIL and CONTEXT lines
        (r"(Key \()([^)\n]*)(\)=\().*(\) (?:already exists|is not present|is still referenced|conflicts))",
         rf"\1\2\3{VALUE}\4"),
        (r"(Key \()([^)\n]*)(\)=\().*(\))", rf"\1\2\3{VALUE}\4"),
        (r"(Failing row contains \().*(\))", rf"\1{ROW}\2"),
        (r"(COPY [^,\n]+, line \d+(?:, column [^:\n]+)?: ).*$", rf"\1{VALUE}"),
        (r"(JSON data, line \d+: ).*$", rf"\1{VALUE}"),
        (r'(Token )".*"( is invalid)', rf'\1"{VALUE}"\2'),
        # DuckDB
        (r"(Could not convert string )(['\"]).*\2( to )", rf"\1\2{VALUE}\2\3"),
        (r"(with value )(['\"]).*\2( can't be cast)", rf"\1\2{VALUE}\2\3"),
        (r'(invalid (?:date|time|timestamp|interval)[\w ]* format: )".*"(, expected)', rf'\1"{VALUE}"\2'),
        (r'(Could not parse string )".*"( according to)', rf'\1"{VALUE}"\2'),
        (r'((?:Duplicate key|key) ")([^:"\n]*): .*("(?: violates| does not exist| is))', rf"\1\2: {VALUE}\3"),
        (r"(Original Line: ).*$", rf"\1{ROW}"),
        (r"(\bInput: ).*$", rf"\1{VALUE}"),
    )
)

# A quoted literal: its quote is not inside a word (``run's`` and ``can't`` are not quotes).
_QUOTED = re.compile(r"""(?<![\w])(["'])(.*?)\1(?![\w])""")
# The words after which an engine (or Atlas) quotes a name, not a value.
NAME_WORDS = frozenset(
    ["column", "columns", "relation", "constraint", "table", "tables", "index", "schema", "type", "function", "sequence", "view", "database", "role", "extension", "file", "directory", "near", "step", "steps", "pipeline", "dataset", "check", "source", "upstream", "queue", "setting", "option", "parameter", "layer", "rule", "policy", "field", "converting", "name", "path", "kind"]
)
# Already scrubbed by a template: ``"<value>"``, ``"email: <value>"`` (DuckDB's key).
_SCRUBBED = re.compile(rf"^(?:[\w.]+: )?(?:{VALUE}|{ROW})$")
_TYPE_NAME = re.compile(r"^[A-Z][A-Z0-9_ ]*(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?$")
_WORD_BEFORE = re.compile(r"([\w]+)\s*$")
_EMAIL = re.compile(r"[\w.!#$%&*+/=?^`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_CARET = re.compile(r"^\s*\^[\^~ ]*$")
_TRACE_KEEP = re.compile(r"^(Traceback \(most recent call last\):|  File \"|    |The above exception|During handling"
                         r"|\s*\^[\^~ ]*$|\s*$)")


def _line(line: str, names: frozenset[str]) -> str:
    for pattern, repl in _TEMPLATES:
        line = pattern.sub(repl, line)

    def quoted(m: re.Match[str]) -> str:
        inner = m.group(2)
        if inner in names or _SCRUBBED.match(inner):
            return m.group(0)
        before = line[: m.start()]
        if before.endswith("."):  # a qualified name: c2."name"
            return m.group(0)
        word = _WORD_BEFORE.search(before)
        if word and word.group(1).lower() in NAME_WORDS:
            return m.group(0)
        if word and word.group(1) == "to" and _TYPE_NAME.match(inner):  # DuckDB: ... to 'INTEGER'
            return m.group(0)
        return f"{m.group(1)}{VALUE}{m.group(1)}"

    line = _QUOTED.sub(quoted, line)
    return _EMAIL.sub(VALUE, line)


def scrub(text: Any, *, keep: Iterable[str] = ()) -> str:
    """``text`` (an error message, any object) with every row value replaced by ``<value>``.

    ``keep``: names known to be names (the error's table, column, constraint), kept even
    where quoted out of a name context. Idempotent.
    """
    if text is None:
        return ""
    text = str(text)
    if not text:
        return text
    names = frozenset(k for k in keep if k)
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _CARET.match(following) and line.strip() and not line.lstrip().startswith("LINE "):
            # DuckDB's strptime shows the input alone on a line, then a caret under the fault.
            out.append(VALUE)
            continue
        out.append(_line(line, names))
    return "\n".join(out)


def scrub_traceback(text: Any) -> str:
    """A formatted traceback: code locations and source lines kept, the exception lines scrubbed.

    The chained database error (``The above exception was the direct cause``) carries its
    own DETAIL and CONTEXT lines: they are exception lines like the others.
    """
    if not text:
        return ""
    lines = str(text).split("\n")
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.extend(scrub("\n".join(pending)).split("\n"))
            pending.clear()

    for line in lines:
        if _TRACE_KEEP.match(line):
            flush()
            out.append(line)
        else:
            pending.append(line)
    flush()
    return "\n".join(out)


def scrub_data(value: Any, *, echo: str = "") -> Any:
    """Every string inside a JSON-like value scrubbed (an API error body, an alert's facts, a try list).

    ``echo``: what the reader sent (a request's body and query): a quoted literal found in it is
    the reader's own input said back, not a value from anyone's data, and is kept.
    """
    if isinstance(value, str):
        return scrub(value, keep=echoed(value, echo))
    if isinstance(value, dict):
        return {k: scrub_data(v, echo=echo) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(v, echo=echo) for v in value]
    return value


def echoed(text: str, echo: str) -> list[str]:
    """The quoted literals of ``text`` that ``echo`` holds verbatim (the reader's own input)."""
    if not echo or not text:
        return []
    return [m.group(2) for m in _QUOTED.finditer(text) if m.group(2) and m.group(2) in echo]


# --- logs ----------------------------------------------------------------------------------
def _needs(value: Any) -> bool:
    return isinstance(value, BaseException) or (isinstance(value, str) and ('"' in value or "'" in value or "@" in value))


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """A log record whose arguments and exception text carry no row value.

    The message template is Atlas's own code; what it interpolates (an exception, an error
    string) is scrubbed, and so is the formatted traceback of ``exc_info``.
    """
    args = record.args
    if isinstance(args, tuple) and any(_needs(a) for a in args):
        record.args = tuple(scrub(a) if _needs(a) else a for a in args)
    elif isinstance(args, dict) and any(_needs(a) for a in args.values()):
        record.args = {k: scrub(a) if _needs(a) else a for k, a in args.items()}
    elif not args and isinstance(record.msg, str) and _needs(record.msg) or isinstance(record.msg, BaseException):
        record.msg = scrub(record.msg)
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = scrub_traceback(logging.Formatter().formatException(record.exc_info))
    return record


_installed = False


def install_log_scrubbing() -> None:
    """Every log record made in this process is scrubbed at creation (handlers and caplog alike)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
