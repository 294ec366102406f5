"""Resident memory of this process (Linux ``/proc``; ``getrusage`` elsewhere)."""

from __future__ import annotations

import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib() -> float | None:
    """Resident memory now."""
    kib = _status_kib("VmRSS")
    return round(kib / 1024, 1) if kib is not None else None


def peak_mib() -> float:
    """Peak resident memory since the process started (never reset)."""
    kib = _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024, 1)
