"""The admin's home: is everything OK, and if not, what to do — gathered from what the apps contribute.

Each app contributes ``overview_sections`` (:mod:`atlas.extensions`):
``callable(request, now) -> Section | None`` (None: nothing to show this user,
e.g. without the view permission). A section states its verdict (``ok``,
``warn``, ``bad``) in words, lists what needs acting on with a link to where to
act, and may carry a chart with its table. Atlas imports none of the apps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.http import HttpRequest
from django.utils.safestring import SafeString

from . import extensions

logger = logging.getLogger(__name__)
OK, WARN, BAD = "ok", "warn", "bad"
LEVELS = (OK, WARN, BAD)


@dataclass
class Item:
    """One thing to look at: its text, where to act on it, and how bad it is."""

    text: str
    url: str = ""
    level: str = WARN
    detail: str = ""  # e.g. a time (safe HTML from atlas.humanize) or a count


@dataclass
class Chart:
    svg: SafeString
    caption: str
    columns: list[str]  # the table equivalent: header, then rows
    rows: list[list[object]]


@dataclass
class Section:
    key: str
    title: str
    order: int
    level: str  # ok / warn / bad
    summary: str  # the verdict in words: "2 checks failing", "All 4 pipelines healthy"
    items: list[Item] = field(default_factory=list)
    total: int = 0  # how many things there are in all (items may show only the first few)
    link: str = ""  # where to see all of them
    link_label: str = ""
    columns: list[str] = field(default_factory=list)  # items as a table: header of ``rows``
    rows: list[list[object]] = field(default_factory=list)  # cells are text or safe HTML
    chart: Chart | None = None
    note: str = ""  # a plain sentence under the verdict (e.g. "no endpoint configured")


def worst(levels: list[str]) -> str:
    return max(levels, key=LEVELS.index, default=OK)


def sections(request: HttpRequest, now: datetime) -> list[Section]:
    """Every contributed section this user may see, in order; a section that fails says so instead."""
    out = []
    for source in extensions.contributions("overview_sections"):
        try:
            section = source(request, now)
        except Exception:  # one broken section must not hide the others
            logger.exception("Overview section %s failed", extensions.dotted(source))
            name = getattr(source, "__module__", "?").split(".")[0]
            section = Section(key=name, title=name.title(), order=999, level=BAD,
                              summary="This section could not be read; the server log has the error.")
        if section is not None:
            out.append(section)
    return sorted(out, key=lambda s: (s.order, s.title))


def verdict(found: list[Section]) -> tuple[str, str]:
    """The one line at the top: everything OK, or how many areas need attention."""
    attention = [s for s in found if s.level != OK]
    if not attention:
        return OK, "Everything is OK."
    names = ", ".join(s.title for s in attention)
    return worst([s.level for s in attention]), f"{len(attention)} area(s) need attention: {names}."
