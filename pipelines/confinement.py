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
