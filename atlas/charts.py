"""Charts drawn on the server as SVG: no script, nothing loaded from elsewhere, readable without CSS.

Every mark carries its numbers (``data-series``, ``data-x``, ``data-value``) and
a ``<title>`` (the hover text and what a screen reader says); callers also show
the same numbers as a table (:func:`table_rows`). Colours come from CSS classes
(``atlas-s-<series>``, ``static/atlas/admin.css``) so themes can change them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from . import humanize


@dataclass(frozen=True)
class Series:
    key: str  # a CSS-safe name: the class atlas-s-<key>
    label: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Threshold:
    value: float
    label: str
    key: str = "limit"


def nice_ticks(top: float, count: int = 4, *, integer: bool = False) -> list[float]:
    """Round axis ticks from 0 to at least ``top`` (1, 2 or 5 times a power of ten apart; whole for counts)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = max(top / count, 1) if integer else top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _svg(width: int, height: int, title: str, body: list[str], css: str) -> SafeString:
    return mark_safe(  # noqa: S308 - every text below went through escape()
        f'<svg class="atlas-chart {css}" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body) + "</svg>"
    )


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    left: int = 44
    right: int = 10
    top: int = 10
    bottom: int = 34

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def y(self, value: float, top: float) -> float:
        return self.top + self.plot_h * (1 - (value / top if top else 0))


def _y_axis(frame: _Frame, ticks: list[float], fmt: Callable[[float], str]) -> list[str]:
    out = []
    for t in ticks:
        y = frame.y(t, ticks[-1])
        out.append(
            f'<line class="atlas-grid" x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="atlas-tick" x="{frame.left - 4}" y="{y + 3:.1f}" text-anchor="end">{escape(fmt(t))}</text>'
        )
    return out


def _x_labels(frame: _Frame, labels: Sequence[str], centre: Callable[[int], float]) -> list[str]:
    every = max(1, math.ceil(len(labels) / 8))  # at most ~8 labels, counted back from the last
    out = []
    for i, label in enumerate(labels):
        if (len(labels) - 1 - i) % every:
            continue
        out.append(
            f'<text class="atlas-tick" x="{centre(i):.1f}" y="{frame.height - frame.bottom + 14}"'
            f' text-anchor="middle">{escape(label)}</text>'
        )
    return out


def stacked_bars(
    labels: Sequence[str], series: Sequence[Series], *, title: str, width: int = 560, height: int = 180,
    fmt: Callable[[float], str] = humanize.number,
) -> SafeString:
    """One bar per label, its series stacked; every segment a ``rect`` with its numbers."""
    frame = _Frame(width, height)
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    ticks = nice_ticks(max(totals, default=0), integer=all(float(v).is_integer() for v in totals))
    slot = frame.plot_w / max(len(labels), 1)
    bar = max(slot * 0.7, 1)
    body = _y_axis(frame, ticks, fmt)
    for i, label in enumerate(labels):
        x = frame.left + i * slot + (slot - bar) / 2
        base = 0.0
        for s in series:
            v = s.values[i] or 0
            if not v:
                continue
            y_top, y_bottom = frame.y(base + v, ticks[-1]), frame.y(base, ticks[-1])
            body.append(
                f'<rect class="atlas-bar atlas-s-{escape(s.key)}" x="{x:.1f}" y="{y_top:.1f}" width="{bar:.1f}"'
                f' height="{y_bottom - y_top:.1f}" data-series="{escape(s.key)}" data-x="{escape(label)}"'
                f' data-value="{v}"><title>{escape(label)}: {escape(fmt(v))} {escape(s.label)}</title></rect>'
            )
            base += v
    body += _x_labels(frame, labels, lambda i: frame.left + i * slot + slot / 2)
    body.append(_legend(frame, series))
    return _svg(width, height, title, body, "atlas-bars")


def lines(
    labels: Sequence[str], series: Sequence[Series], *, title: str, width: int = 560, height: int = 180,
    thresholds: Sequence[Threshold] = (), fmt: Callable[[float], str] = humanize.number, top: float | None = None,
) -> SafeString:
    """A line per series over ``labels`` (a point per value, gaps for None), with dashed thresholds."""
    frame = _Frame(width, height)
    values = [v for s in series for v in s.values if v is not None] + [t.value for t in thresholds]
    ticks = nice_ticks(top if top is not None else max(values, default=0))
    n = len(labels)

    def x(i: int) -> float:
        return frame.left + (frame.plot_w * (i / (n - 1)) if n > 1 else frame.plot_w / 2)

    body = _y_axis(frame, ticks, fmt)
    for t in thresholds:
        y = frame.y(t.value, ticks[-1])
        body.append(
            f'<line class="atlas-threshold atlas-s-{escape(t.key)}" x1="{frame.left}" x2="{frame.width - frame.right}"'
            f' y1="{y:.1f}" y2="{y:.1f}" data-series="{escape(t.key)}" data-value="{t.value}">'
            f"<title>{escape(t.label)}: {escape(fmt(t.value))}</title></line>"
        )
    for s in series:
        points = [(x(i), frame.y(v, ticks[-1]), i, v) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _i, _v in points)
            body.append(f'<polyline class="atlas-line atlas-s-{escape(s.key)}" points="{path}" fill="none"/>')
        for px, py, i, v in points:
            body.append(
                f'<circle class="atlas-point atlas-s-{escape(s.key)}" cx="{px:.1f}" cy="{py:.1f}" r="3"'
                f' data-series="{escape(s.key)}" data-x="{escape(labels[i])}" data-value="{v}">'
                f"<title>{escape(labels[i])}: {escape(fmt(v))} {escape(s.label)}</title></circle>"
            )
    body += _x_labels(frame, labels, x)
    body.append(_legend(frame, [*series, *[Series(t.key, t.label, []) for t in thresholds]]))
    return _svg(width, height, title, body, "atlas-lines")


def _legend(frame: _Frame, series: Sequence[Series]) -> str:
    out, x = [], float(frame.left)
    y = frame.height - 8
    for s in series:
        out.append(
            f'<rect class="atlas-s-{escape(s.key)} atlas-legend-key" x="{x:.0f}" y="{y - 8}" width="10" height="10"/>'
            f'<text class="atlas-legend" x="{x + 14:.0f}" y="{y + 1}">{escape(s.label)}</text>'
        )
        x += 24 + 6.5 * len(s.label)
    return "".join(out)


def table_rows(labels: Sequence[str], series: Sequence[Series]) -> list[list[object]]:
    """The chart's numbers as rows (label, then one value per series): its text equivalent."""
    return [[label, *[s.values[i] for s in series]] for i, label in enumerate(labels)]


@dataclass(frozen=True)
class Span:
    """One row of a timeline: a bar from ``start`` lasting ``seconds``; ``inside``/``after``: (key, label, seconds)."""

    label: str
    start: float
    seconds: float
    key: str  # the bar's series (its status)
    inside: Sequence[tuple[str, str, float]] = ()  # parts of the bar (drawn at its end), e.g. hooks on the staged table
    after: Sequence[tuple[str, str, float]] = ()  # time spent right after the bar, e.g. hooks after publishing


def timeline(spans: Sequence[Span], *, title: str, width: int = 760, row: int = 22) -> SafeString:
    """A Gantt chart: a row per span on a shared seconds axis; every bar carries its numbers."""
    label_w = 170
    frame = _Frame(width, row * len(spans) + 44, left=label_w, right=28, top=6, bottom=38)
    end = max((s.start + s.seconds + sum(a[2] for a in s.after) for s in spans), default=0)
    ticks = nice_ticks(end)
    scale = frame.plot_w / (ticks[-1] or 1)
    body = []
    for t in ticks:
        x = frame.left + t * scale
        body.append(
            f'<line class="atlas-grid" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{frame.height - frame.bottom}"/>'
            f'<text class="atlas-tick" x="{x:.1f}" y="{frame.height - frame.bottom + 12}" text-anchor="middle">'
            f"{escape(humanize.number(t))} s</text>"
        )
    for i, s in enumerate(spans):
        y = frame.top + i * row + 3
        h = row - 6
        x = frame.left + s.start * scale
        w = max(s.seconds * scale, 1)
        body.append(
            f'<text class="atlas-tick atlas-span-label" x="{label_w - 6}" y="{y + h - 4}" text-anchor="end">{escape(s.label)}</text>'
            f'<rect class="atlas-span atlas-s-{escape(s.key)}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{h}"'
            f' data-series="{escape(s.key)}" data-x="{escape(s.label)}" data-start="{s.start:.3f}" data-value="{s.seconds:.3f}">'
            f"<title>{escape(s.label)}: {escape(humanize.number(s.seconds))} s from {escape(humanize.number(s.start))} s</title></rect>"
        )
        inner_end = x + w
        for key, label, seconds in reversed(s.inside):
            iw = min(seconds * scale, inner_end - x)
            body.append(
                f'<rect class="atlas-span-part atlas-s-hooks" x="{inner_end - iw:.1f}" y="{y + h / 4:.1f}" width="{iw:.1f}"'
                f' height="{h / 2:.1f}" data-series="{escape(key)}" data-x="{escape(s.label)}" data-value="{seconds:.3f}">'
                f"<title>{escape(s.label)}, of which {escape(label)}: {escape(humanize.number(seconds))} s</title></rect>"
            )
            inner_end -= iw
        ax = x + w
        for key, label, seconds in s.after:
            aw = max(seconds * scale, 1)
            body.append(
                f'<rect class="atlas-span-after atlas-s-hooks" x="{ax:.1f}" y="{y}" width="{aw:.1f}" height="{h}"'
                f' data-series="{escape(key)}" data-x="{escape(s.label)}" data-value="{seconds:.3f}">'
                f"<title>{escape(s.label)}, then {escape(label)}: {escape(humanize.number(seconds))} s</title></rect>"
            )
            ax += aw
    body.append(_legend(frame, [Series("succeeded", "step", []), Series("hooks", "hooks (checks, policies, PII scan, lineage)", [])]))
    return _svg(width, frame.height, title, body, "atlas-timeline")


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    column: int
    row: int
    status: str  # the series class: atlas-s-<status>
    url: str = ""
    title: str = ""


def dag(nodes: Sequence[Node], edges: Sequence[tuple[str, str]], *, title: str) -> SafeString:
    """Boxes in columns (by depth), arrows from each producer to the steps that read it."""
    box_w, box_h, gap_x, gap_y, pad = 150, 30, 46, 14, 8
    cols = max((n.column for n in nodes), default=0) + 1
    rows = max((n.row for n in nodes), default=0) + 1
    width = pad * 2 + cols * box_w + (cols - 1) * gap_x
    height = pad * 2 + rows * box_h + (rows - 1) * gap_y + 22
    where = {n.key: (pad + n.column * (box_w + gap_x), pad + n.row * (box_h + gap_y)) for n in nodes}
    body = [
        '<defs><marker id="atlas-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="atlas-edge-head"/></marker></defs>'
    ]
    for a, b in edges:
        if a not in where or b not in where:
            continue
        (ax, ay), (bx, by) = where[a], where[b]
        x1, y1, x2, y2 = ax + box_w, ay + box_h / 2, bx, by + box_h / 2
        mid = (x1 + x2) / 2
        body.append(
            f'<path class="atlas-edge" d="M {x1:.0f} {y1:.0f} C {mid:.0f} {y1:.0f}, {mid:.0f} {y2:.0f}, {x2:.0f} {y2:.0f}"'
            f' fill="none" marker-end="url(#atlas-arrow)" data-from="{escape(a)}" data-to="{escape(b)}"/>'
        )
    for n in nodes:
        x, y = where[n.key]
        label = n.label if len(n.label) <= 20 else n.label[:19] + "…"
        box = (
            f'<g class="atlas-node" data-step="{escape(n.key)}" data-status="{escape(n.status)}">'
            f"<title>{escape(n.title or n.label)}</title>"
            f'<rect class="atlas-node-box atlas-s-{escape(n.status)}" x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="5"/>'
            f'<text class="atlas-node-label" x="{x + box_w / 2}" y="{y + box_h / 2 + 4}" text-anchor="middle">{escape(label)}</text></g>'
        )
        body.append(f'<a href="{escape(n.url)}">{box}</a>' if n.url else box)
    legend = sorted({n.status for n in nodes})
    body.append(_legend(_Frame(width, height, left=pad), [Series(k, k, []) for k in legend]))
    return _svg(width, height, title, body, "atlas-dag")
