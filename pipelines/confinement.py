"""Path sources read only inside the configured data roots (``settings.ATLAS_DATA_ROOTS``).

A path source is an operator's string that Atlas turns into ``open()`` calls,
so without a fence it reads anything the process can: ``/etc/passwd``, the
``.env`` holding SECRET_KEY, the warehouse file. The fence is an allowlist of
directories. Every check works on the *resolved* path (``os.path.realpath``:
symbolic links and ``..`` followed), because that is what ``open()`` reaches;
it runs when the source is saved (a clear form error) and again, file by file,
when it is read (a link can change after the save). Messages name the roots,
never a file's content.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from django.conf import settings


class ConfinementError(ValueError):
    """A location that reaches outside the data roots, or a malformed pattern."""


def data_roots() -> list[str]:
    """The configured roots, resolved (a root that is itself a link counts as where it points)."""
    roots = [os.path.realpath(os.fspath(r)) for r in settings.ATLAS_DATA_ROOTS if str(r).strip()]
    return list(dict.fromkeys(roots))


def _roots_text(roots: list[str]) -> str:
    return ", ".join(roots) if roots else "none configured"


def inside(path: str, roots: list[str]) -> bool:
    """Whether resolved ``path`` is a root or below one (by path components, not by prefix)."""
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def absolute_location(location: str) -> str:
    """``location`` as an absolute pattern: ``~`` expanded, a relative one joined to the first root.

    ``..`` components are refused outright: no legitimate location needs them,
    and refusing them keeps a glob from climbing out before it is resolved.
    """
    roots = data_roots()
    text = os.path.expanduser((location or "").strip())
    if not text:
        raise ConfinementError("A path source needs a file path or glob.")
    if "\x00" in text:
        raise ConfinementError("A path cannot contain a NUL character.")
    if ".." in Path(text).parts:
        raise ConfinementError(
            f"'..' is not allowed in a source path; give a path inside the data roots "
            f"(ATLAS_DATA_ROOTS: {_roots_text(roots)})."
        )
    if not os.path.isabs(text):
        if not roots:
            raise ConfinementError(
                "No data roots are configured (ATLAS_DATA_ROOTS): path sources are disabled."
            )
        text = os.path.join(roots[0], text)
    return os.path.normpath(text)


def _static_prefix(pattern: str) -> str:
    """The directory part of ``pattern`` before its first wildcard component."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.path.join(*fixed) if fixed else os.sep


def _refuse_outside(shown: str, roots: list[str]) -> ConfinementError:
    return ConfinementError(
        f"{shown} is outside the data roots; path sources may only read files inside "
        f"ATLAS_DATA_ROOTS ({_roots_text(roots)}), after links and '..' are resolved."
    )


def check_location(location: str) -> str:
    """Validate a location at save time; return its absolute pattern. Raises ConfinementError.

    A plain path must resolve inside a root (the file need not exist yet); a
    glob's fixed directory part must, and so must the pattern as a whole, so
    ``/**`` or ``/etc/*`` are refused before anything is listed.
    """
    roots = data_roots()
    pattern = absolute_location(location)
    if glob.has_magic(pattern):
        prefix = os.path.realpath(_static_prefix(pattern))
        if not inside(prefix, roots):
            raise _refuse_outside(location, roots)
        return pattern
    if not inside(os.path.realpath(pattern), roots):
        raise _refuse_outside(location, roots)
    return pattern


def resolve_files(location: str) -> list[tuple[str, str]]:
    """``(path as found, resolved path)`` of every file behind ``location``, all inside a root.

    Called when the source is read: each file a glob yields is resolved and
    checked on its own, so a link planted in a root after the save is refused.
    What is read later is the resolved path, so it is exactly what was checked
    here even if the link changes in between. Raises ConfinementError.
    """
    roots = data_roots()
    pattern = check_location(location)
    if glob.has_magic(pattern):
        paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if not paths:
            raise ConfinementError(f"No file matches {location!r}.")
    else:
        if not os.path.isfile(pattern):
            raise ConfinementError(f"{location}: no such file.")
        paths = [pattern]
    found = []
    for path in paths:
        real = os.path.realpath(path)
        if not inside(real, roots):
            raise _refuse_outside(path, roots)
        found.append((path, real))
    return found


def resolve_location(location: str) -> list[str]:
    """The resolved files behind ``location`` (see ``resolve_files``)."""
    return [real for _, real in resolve_files(location)]


def confined_file(path: str, root: str, setting: str) -> str:
    """``path`` resolved, if it lies inside the single directory ``root`` (named by ``setting``)."""
    real = os.path.realpath(path)
    top = os.path.realpath(root)
    if not inside(real, [top]):
        raise ConfinementError(f"The stored file is outside {setting} ({top}); it is not read.")
    return real


# --- Locations in a project directory (definitions as code, issue 19) --------------------------------
# An absolute path names one machine's directories; a project is applied on others. So an export
# writes a path source's location relative to the data root it lies under, and an apply resolves
# it back to an absolute path under the roots that machine configures.
_PREFERRED: ContextVar[str | None] = ContextVar("atlas_preferred_root", default=None)


@contextmanager
def relative_to(directory: str | os.PathLike) -> Iterator[None]:
    """Within it, a project's relative locations are taken under ``directory`` first.

    For a project whose files sit in one known directory (the demo's, ATLAS_DEMO_DIR), so that
    a file of the same name under an earlier root is never picked instead. The directory must
    lie inside a data root (the sources' own check refuses it otherwise).
    """
    token = _PREFERRED.set(os.path.realpath(os.fspath(directory)))
    try:
        yield
    finally:
        _PREFERRED.reset(token)


def local_location(location: str) -> str:
    """A project's location as the absolute path a source stores; an absolute one is kept.

    A relative location is taken under the first data root (in ATLAS_DATA_ROOTS' order) where
    it names a file, or for a glob, where the glob matches one; where none does (the files
    come later), under the first root — as the source itself would take it. Inside
    :func:`relative_to`, under that directory.
    """
    text = (location or "").strip()
    if not text or os.path.isabs(text) or text.startswith("~"):
        return location
    if preferred := _PREFERRED.get():
        return os.path.normpath(os.path.join(preferred, text))
    roots = data_roots()
    if not roots:
        return location  # the source's own check says path sources are disabled
    for root in roots:
        candidate = os.path.normpath(os.path.join(root, text))
        if glob.glob(candidate) if glob.has_magic(candidate) else os.path.isfile(candidate):
            return candidate
    return os.path.normpath(os.path.join(roots[0], text))


def portable_location(location: str) -> str:
    """``location`` relative to the data root it lies under, when the project resolves it back there.

    Kept as it is when it lies under no root, or when the relative path would name another
    root's file (the same name under an earlier root) — a project never points elsewhere.
    """
    text = (location or "").strip()
    if not text or not os.path.isabs(text):
        return location
    path = os.path.normpath(text)
    spellings = [os.path.normpath(os.fspath(r)) for r in settings.ATLAS_DATA_ROOTS if str(r).strip()]
    for root in dict.fromkeys([*data_roots(), *spellings]):
        if path != root and inside(path, [root]):
            relative = path[len(root.rstrip(os.sep)) + 1:]
            if os.path.realpath(local_location(relative)) == os.path.realpath(path):
                return relative
    return location
