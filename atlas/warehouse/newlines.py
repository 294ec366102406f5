"""Where a chunk's newlines are: found once per chunk, however many readers of the chunk ask.

Every chunk of a file being loaded passes several readers in one thread: the pipe that
deals it to COPY (``pgcopy.Pipe``), the line-end statistics (``pipelines.hygiene``) and the
content scan with its quote check (``pipelines.sources.ContentScan``). Each needs the
chunk's newlines (a count, the n-th one, all of them); one numpy pass finds them and the
others reuse it. The memo is per thread and holds the last chunk only, compared by
identity (the memo keeps it alive, so its id cannot be reused), and only for ``bytes``,
which cannot change.
"""

from __future__ import annotations

import threading
from typing import Any

_memo = threading.local()


def positions(chunk: bytes) -> Any:
    """Offsets of the newline bytes of ``chunk``, ascending (a numpy array of int64)."""
    last = getattr(_memo, "last", None)
    if last is not None and last[0] is chunk:
        return last[1]
    import numpy as np  # not at import: every command loads this module through the admin

    found = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
    if type(chunk) is bytes:
        _memo.last = (chunk, found)
    return found


def count(chunk: bytes) -> int:
    """Newline bytes in ``chunk``."""
    return len(positions(chunk))


def nth(chunk: bytes, n: int) -> int:
    """Offset of the ``n``-th newline (1-based) of ``chunk``, which holds at least ``n``."""
    return int(positions(chunk)[n - 1])
