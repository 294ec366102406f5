"""Container health probe: ``python healthcheck.py URL`` exits 0 when URL answers 200, else 1.

URL may be a path (``/healthz``): then it is this container's own web port
(``http://127.0.0.1:$PORT/healthz``, PORT as gunicorn.conf.py binds it, 8000 by default).

Standard library only (it runs every interval: no Django start). The request carries a
``Host`` header Django accepts: the first concrete name of ``ALLOWED_HOSTS`` (a leading dot
dropped, a wildcard ignored), else the URL's own host, so the probe keeps passing once an
operator restricts ``ALLOWED_HOSTS`` to the public name.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 4.0


def host_header(url: str, allowed_hosts: str) -> str:
    for name in (part.strip() for part in allowed_hosts.split(",")):
        if name and name != "*":
            return name.lstrip(".")
    return urlsplit(url).netloc


def target(url: str, environ: dict[str, str]) -> str:
    if url.startswith("/"):
        return f"http://127.0.0.1:{environ.get('PORT') or '8000'}{url}"
    return url


def probe(url: str, environ: dict[str, str] | None = None) -> tuple[bool, str]:
    environ = os.environ if environ is None else environ
    url = target(url, environ)
    if urlsplit(url).scheme not in ("http", "https"):
        return False, f"not an http(s) URL: {url!r}"
    request = urllib.request.Request(url, headers={"Host": host_header(url, environ.get("ALLOWED_HOSTS", ""))})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310  http(s) only, checked above
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return False, f"{url}: {type(exc).__name__}: {exc}"
    return status == 200, f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: healthcheck.py URL|/path", file=sys.stderr)
        return 2
    ok, message = probe(argv[1])
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
