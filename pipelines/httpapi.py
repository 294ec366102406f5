"""JSON API sources: pages of records fetched through the network guard, flattened to rows, written as JSON Lines.

* **Auth**: ``bearer`` (``env:ATLAS_SOURCE_SECRET_…``, sent as ``Authorization: Bearer …``)
  and/or ``headers`` / ``params`` referencing secrets, as URL sources do
  (``pipelines.credentials``). Secrets go to the source's own origin only: a next-page
  link to another origin is refused, and no message ever holds a secret.
* **Pagination** (``pagination``): ``{"style": "link"}`` follows the ``Link: <…>; rel="next"``
  header; ``{"style": "cursor", "cursor": "meta.next_cursor", "param": "cursor"}`` sends the
  cursor found in the JSON as a query parameter; ``{"style": "next", "field": "links.next"}``
  follows a URL found in the JSON; ``{"style": "page", "param": "page", "size_param":
  "per_page", "size": 100, "start": 1}`` counts pages until one comes back short. Without
  it, one request.
* **Retries**: 429 and 5xx answers and failed connections are retried up to
  ``ATLAS_API_MAX_RETRIES`` times with exponential backoff and jitter
  (``ATLAS_API_BACKOFF_SECONDS`` doubling, at most ``ATLAS_API_MAX_BACKOFF_SECONDS``); a
  ``Retry-After`` (seconds or HTTP date) is honoured up to ``ATLAS_API_MAX_RETRY_AFTER_SECONDS``.
* **Limits**: ``max_pages`` / ``max_records`` stop the read there (an operator's choice);
  without ``max_pages`` an API with more than ``ATLAS_API_MAX_PAGES`` pages is an error, as is
  a next page seen before (a loop). Each page is at most ``ATLAS_API_MAX_PAGE_BYTES``.
* **Rows**: ``records`` is the dotted path to the list of records in each page (none: the
  page is the list). Nested objects become dotted columns (``address.city``), arrays JSON
  text. Rows are written one page at a time (memory holds one page), and the file is handed
  to the loader only once every page has been read: a failure on any page loads nothing.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import urllib3
from django.conf import settings

from atlas.warehouse.filereader import IngestError

from . import credentials, netguard

OPTION_KEYS = {"headers", "params", "bearer", "records", "pagination", "max_pages", "max_records"}
STYLES = {
    "link": set(),
    "cursor": {"cursor", "param"},
    "next": {"field"},
    "page": {"param", "size_param", "size", "start"},
}
PATH_RE = re.compile(r"^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$")
PARAM_RE = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,100}$")
LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
AUTH_FAILED = {401: "refused the credentials", 403: "denied access with these credentials"}


def clean(location: str, options: dict) -> dict[str, str]:
    """Validation errors of an API source, by field (headers and params are checked by ``Source``)."""
    if not re.match(r"^https?://", location or ""):
        return {"location": "An API source needs the http:// or https:// URL of its first page."}
    if problem := credentials.url_credential_problem(location):
        return {"location": problem}
    if "bearer" in options and (problem := credentials.check_reference("bearer", options["bearer"])):
        return {"options": problem}
    records = options.get("records", "")
    if records and not (isinstance(records, str) and PATH_RE.match(records)):
        return {"options": 'records must be a dotted path to the list of records, e.g. "data.items".'}
    for key in ("max_pages", "max_records"):
        value = options.get(key)
        if key in options and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return {"options": f"{key} must be a whole number of at least 1."}
    if "pagination" in options and (problem := _pagination_problem(options["pagination"])):
        return {"options": problem}
    return {}


def _pagination_problem(spec: object) -> str | None:
    styles = ", ".join(sorted(STYLES))
    if not isinstance(spec, dict) or spec.get("style") not in STYLES:
        return f'pagination must be an object with a style: one of {styles}, e.g. {{"style": "link"}}.'
    style = spec["style"]
    unknown = set(spec) - STYLES[style] - {"style"}
    if unknown:
        return f"pagination ({style}) takes no {', '.join(sorted(unknown))}; it takes {', '.join(sorted(STYLES[style])) or 'nothing else'}."
    for key in ("cursor", "field"):
        if style in ("cursor", "next") and key in STYLES[style] and not (isinstance(spec.get(key), str) and PATH_RE.match(spec[key])):
            return f'pagination ({style}) needs {key}: the dotted path to it in each page, e.g. "meta.next".'
    for key in ("param", "size_param"):
        if key in spec and not (isinstance(spec[key], str) and PARAM_RE.match(spec[key])):
            return f"pagination: {key} must be a query parameter name."
    if style == "cursor" and "param" not in spec:
        return 'pagination (cursor) needs param: the query parameter the cursor is sent in, e.g. "cursor".'
    for key, low in (("size", 1), ("start", 0)):
        value = spec.get(key)
        if key in spec and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            return f"pagination: {key} must be a whole number of at least {low}."
    if style == "page" and "size" not in spec:
        return "pagination (page) needs size: the records per page (a short page is the last)."
    return None


# --- reading ---------------------------------------------------------------------------------------
@dataclass
class Page:
    status: int
    body: bytes
    link: str | None


@dataclass
class Written:
    """What ``fetch_records`` wrote: the columns in first-seen order, the rows, the pages read."""

    columns: dict[str, None] = field(default_factory=dict)
    rows: int = 0
    pages: int = 0


def dig(value: Any, path: str) -> Any:
    """The value at a dotted path (None when any part is missing)."""
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def flatten(record: dict, prefix: str = "", out: dict | None = None) -> dict[str, Any]:
    """Nested objects as dotted columns, arrays (and empty objects) as JSON text, scalars as they are."""
    out = {} if out is None else out
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten(value, f"{name}.", out)
            continue
        if name in out:
            raise ValueError(f"the column {name!r} arises twice (a key with a dot and a nested object)")
        out[name] = json.dumps(value, ensure_ascii=False, separators=(",", ":")) if isinstance(value, list | dict) else value
    return out


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: uniform in [base·2^attempt / 2, base·2^attempt], capped."""
    ceiling = min(float(settings.ATLAS_API_MAX_BACKOFF_SECONDS), float(settings.ATLAS_API_BACKOFF_SECONDS) * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


def next_link(header: str | None) -> str | None:
    """The target of ``rel="next"`` in a Link header (RFC 8288)."""
    for target, params in LINK_RE.findall(header or ""):
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return target
    return None


def with_query(url: str, values: dict[str, Any]) -> str:
    """``url`` with ``values`` set in its query (replacing the same names)."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in values]
    query = urlencode(kept + [(k, str(v)) for k, v in values.items()])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class Reader:
    """One API source read: requests with retries, pages, records, rows."""

    def __init__(self, location: str, options: dict) -> None:
        self.location = location
        self.options = options
        self.shown = credentials.safe_url(location)
        try:
            self.headers = {"Accept": "application/json", **credentials.resolve(options.get("headers") or {})}
            self.params = credentials.resolve(options.get("params") or {})
            if options.get("bearer"):
                self.headers["Authorization"] = "Bearer " + credentials.resolve({"bearer": options["bearer"]})["bearer"]
        except credentials.CredentialError as exc:
            raise IngestError(f"Cannot read {self.shown}: {exc}") from exc
        self.secrets = [*self.headers.values(), *self.params.values()]
        self.origin = self._origin(location)

    def _origin(self, url: str) -> tuple[str, str, int]:
        try:
            return netguard.origin(url)
        except netguard.URLRefused as exc:
            raise self._fail(f"Refused to fetch {credentials.safe_url(url)}: {exc}") from exc

    def _fail(self, text: str, reason: str = "source") -> IngestError:
        return IngestError(credentials.redact(text, self.secrets), reason)

    def _get(self, url: str, page: int) -> Page:
        """One page, retried on 429/5xx and failed connections; raises IngestError."""
        retries = int(settings.ATLAS_API_MAX_RETRIES)
        limit = int(settings.ATLAS_API_MAX_PAGE_BYTES)
        longest = float(settings.ATLAS_API_MAX_RETRY_AFTER_SECONDS)
        where = f"{self.shown} (page {page})"
        for attempt in range(retries + 1):
            wait: float | None = None
            try:
                with netguard.fetch(credentials.with_params(url, self.params), self.headers) as resp:
                    status = resp.status
                    if status == 429 or 500 <= status < 600:
                        wait = retry_after(resp.response.headers.get("Retry-After"))
                        if wait is not None and wait > longest:
                            raise self._fail(
                                f"{where} answered HTTP {status} asking to wait {wait:.0f} s, more than"
                                f" ATLAS_API_MAX_RETRY_AFTER_SECONDS ({longest:.0f} s)."
                            )
                        failure = f"HTTP {status} {resp.reason}".strip()
                    elif status >= 400:
                        if status in AUTH_FAILED:
                            raise self._fail(
                                f"{where} {AUTH_FAILED[status]} (HTTP {status}): check the secret its bearer,"
                                " headers or params reference."
                            )
                        raise self._fail(f"{where} answered HTTP {status} {resp.reason}.".replace(" .", "."))
                    else:
                        body = bytearray()
                        for chunk in resp.chunks(1 << 16):
                            body += chunk
                            if len(body) > limit:
                                raise self._fail(f"{where} is larger than ATLAS_API_MAX_PAGE_BYTES ({limit} bytes).")
                        return Page(status, bytes(body), resp.response.headers.get("Link"))
            except netguard.URLRefused as exc:
                raise self._fail(f"Refused to fetch {where}: {exc}") from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                failure = f"{exc.__class__.__name__} ({FETCH_HINTS.get(exc.__class__.__name__, 'the connection failed')})"
            if attempt == retries:
                raise self._fail(f"{where} failed after {retries + 1} attempts; last: {failure}.")
            time.sleep(wait if wait is not None else backoff(attempt))
        raise AssertionError("unreachable")

    def _records(self, page: Page, number: int) -> tuple[Any, list[dict]]:
        where = f"{self.shown} (page {number})"
        try:
            doc = json.loads(page.body)
        except UnicodeDecodeError as exc:
            raise self._fail(f"{where} is not UTF-8 JSON (byte {exc.start}).", "encoding") from exc
        except json.JSONDecodeError as exc:
            raise self._fail(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.", "schema") from exc
        path = self.options.get("records") or ""
        records = dig(doc, path) if path else doc
        if not isinstance(records, list):
            found = f"keys {', '.join(sorted(map(str, doc))[:20])}" if isinstance(doc, dict) else type(doc).__name__
            what = f"no list at the records path {path!r}" if path else "not a list of records (set the records option to its path)"
            raise self._fail(f"{where}: {what}; the page holds {found}.", "schema")
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise self._fail(f"{where}: record {i + 1} is a JSON {type(record).__name__}, not an object.", "schema")
        return doc, records

    def _next(self, url: str, page: Page, doc: Any, records: list[dict], number: int) -> str | None:
        spec = self.options.get("pagination") or {}
        style = spec.get("style")
        if style == "link":
            target = next_link(page.link)
            return urljoin(url, target) if target else None
        if style == "next":
            target = dig(doc, spec["field"])
            return urljoin(url, target) if isinstance(target, str) and target else None
        if style == "cursor":
            cursor = dig(doc, spec["cursor"])
            return with_query(self.location, {spec["param"]: cursor}) if cursor not in (None, "") and records else None
        if style == "page":
            if len(records) < spec["size"]:
                return None
            return self._page_url(number + 1)
        return None

    def _page_url(self, number: int) -> str:
        spec = self.options.get("pagination") or {}
        if spec.get("style") != "page":
            return self.location
        values = {spec.get("param", "page"): spec.get("start", 1) + number - 1}
        if spec.get("size_param"):
            values[spec["size_param"]] = spec["size"]
        return with_query(self.location, values)

    def write(self, out: IO[str]) -> Written:
        """Every page's records, flattened, one JSON object per line in ``out``."""
        written = Written()
        max_pages = self.options.get("max_pages")
        max_records = self.options.get("max_records")
        ceiling = int(settings.ATLAS_API_MAX_PAGES)
        url: str | None = self._page_url(1)
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise self._fail(f"{self.shown}: page {written.pages + 1} repeats an earlier page's address (a pagination loop).")
            seen.add(url)
            if self._origin(url) != self.origin:
                raise self._fail(
                    f"{self.shown}: page {written.pages + 1} is on another origin ({credentials.safe_url(url)});"
                    " refused, so the source's credentials never leave its own server."
                )
            number = written.pages + 1
            page = self._get(url, number)
            doc, records = self._records(page, number)
            if max_records is not None:
                records = records[: max_records - written.rows]
            for i, record in enumerate(records):
                try:
                    row = flatten(record)
                except ValueError as exc:
                    raise self._fail(f"{self.shown} (page {number}) record {i + 1}: {exc}.", "schema") from exc
                written.columns.update(dict.fromkeys(row))
                out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            written.rows += len(records)
            written.pages = number
            if (max_records is not None and written.rows >= max_records) or (max_pages is not None and number >= max_pages):
                break
            url = self._next(url, page, doc, records, number)
            if url is not None and max_pages is None and number >= ceiling:
                raise self._fail(
                    f"{self.shown} has more than ATLAS_API_MAX_PAGES ({ceiling}) pages; set max_pages to read fewer."
                )
        return written


FETCH_HINTS = {
    "NewConnectionError": "could not connect",
    "ConnectTimeoutError": "timed out connecting",
    "ReadTimeoutError": "timed out reading",
    "ProtocolError": "the connection broke",
    "SSLError": "TLS certificate or handshake refused",
}


def fetch_records(location: str, options: dict, path: str) -> Written:
    """Read every page of the API at ``location`` into the JSON Lines file ``path``. Raises IngestError."""
    reader = Reader(location, options)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        return reader.write(out)
