"""URL sources reach only public addresses (or ones an operator allowed), over http(s).

A URL source makes the Atlas server send a request wherever an operator
points it: to Redis on 127.0.0.1:6379, to Atlas's own ``/metrics``, to the
cloud metadata service at 169.254.169.254. So every hop is checked *at
connect time*: the host is resolved once, every address it resolves to must
be allowed, and the connection goes to that checked address (never a second
DNS lookup a rebinding attacker could answer differently). Redirects are
followed by hand, each hop checked the same way, a bounded number of times.

Allowed is an allowlist: a globally routable unicast address
(``ipaddress``'s ``is_global``, minus multicast and reserved), or one inside
``ATLAS_URL_ALLOWED_NETWORKS`` (CIDRs), or any address of a host named in
``ATLAS_URL_ALLOWED_HOSTS``. IPv4 embedded in IPv6 (mapped, 6to4, Teredo,
NAT64) is judged by the IPv4 address it carries.

Downloads are bounded: ``ATLAS_URL_MAX_BYTES``, a connect/read timeout
(``ATLAS_HTTP_TIMEOUT_SECONDS``) and a total deadline
(``ATLAS_URL_TOTAL_TIMEOUT_SECONDS``).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = {"http": 80, "https": 443}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
REDIRECTS = {301, 302, 303, 307, 308}


class URLRefused(ValueError):
    """The URL, one of its redirects, or its answer is not allowed. The message is safe to show."""


@dataclass(frozen=True)
class Target:
    """One checked hop: where to connect (the checked address) and what to ask for."""

    scheme: str
    host: str  # as written in the URL (Host header, TLS server name)
    port: int
    address: str  # the checked IP the connection goes to
    path: str  # path and query, as sent

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(str(n).strip(), strict=False)
        for n in settings.ATLAS_URL_ALLOWED_NETWORKS
        if str(n).strip()
    ]


def _allowed_hosts() -> set[str]:
    return {
        str(h).strip().lower().strip("[]")
        for h in settings.ATLAS_URL_ALLOWED_HOSTS
        if str(h).strip()
    }


def embedded_ipv4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if isinstance(addr, ipaddress.IPv4Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if addr in NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_public(addr: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, CGNAT, multicast, reserved."""
    v4 = embedded_ipv4(addr)
    if v4 is not None:
        return is_public(v4)
    return (
        addr.is_global
        and not addr.is_multicast
        and not addr.is_reserved
        and not addr.is_unspecified
        and not addr.is_loopback
        and not addr.is_link_local
        and not addr.is_private
    )


def address_allowed(addr: IPAddress) -> bool:
    """Public, or inside an operator-allowed network (the address or the IPv4 it embeds)."""
    if is_public(addr):
        return True
    candidates = [addr] + ([v4] if (v4 := embedded_ipv4(addr)) is not None else [])
    return any(c.version == n.version and c in n for c in candidates for n in _allowed_networks())


def _parse(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise URLRefused("The URL is malformed (host or port).") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise URLRefused("Only http:// and https:// URLs are allowed.")
    if parts.username is not None or parts.password is not None:
        raise URLRefused(
            "Credentials in a URL are not allowed; reference a secret in the source's headers."
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise URLRefused("The URL has no host.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or SCHEMES[scheme], path


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL, as a hop to it would be judged; raises URLRefused."""
    scheme, host, port, _path = _parse(url)
    return scheme, host.lower(), port


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (one lookup; IP literals in any notation too)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise URLRefused(f"Cannot resolve host {host!r}.") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def check(url: str) -> Target:
    """Resolve ``url``'s host and return the hop to make, or raise URLRefused.

    Every address the name resolves to must be allowed (a name that also
    resolves to an internal address is refused as a whole), unless the host
    itself is in ATLAS_URL_ALLOWED_HOSTS.
    """
    scheme, host, port, path = _parse(url)
    addresses = resolve(host, port)
    if not addresses:
        raise URLRefused(f"Host {host!r} has no address.")
    if host.lower() not in _allowed_hosts():
        for text in addresses:
            addr = ipaddress.ip_address(text.split("%", 1)[0])
            if not address_allowed(addr):
                raise URLRefused(
                    f"{host!r} resolves to {addr}, a loopback, private, link-local, metadata or"
                    " otherwise non-public address. URL sources may only reach public addresses"
                    " unless the operator allows the network (ATLAS_URL_ALLOWED_NETWORKS) or the"
                    " host (ATLAS_URL_ALLOWED_HOSTS)."
                )
    return Target(scheme, host, port, addresses[0], path)


def _pool(target: Target, timeout: float) -> urllib3.HTTPConnectionPool:
    """A pool to the checked address; the URL's host names the request and the TLS peer."""
    kwargs = {
        "port": target.port,
        "timeout": urllib3.Timeout(connect=timeout, read=timeout),
        "retries": False,
        "maxsize": 1,
    }
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.address,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.ATLAS_URL_CA_BUNDLE or certifi.where(),
            **kwargs,
        )
    return urllib3.HTTPConnectionPool(target.address, **kwargs)


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == SCHEMES[target.scheme] else f"{host}:{target.port}"


@dataclass
class Download:
    """An open, checked response: ``chunks()`` yields at most ATLAS_URL_MAX_BYTES bytes in total."""

    response: urllib3.BaseHTTPResponse
    url: str
    deadline: float
    max_bytes: int

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def reason(self) -> str:
        return self.response.reason or ""

    def chunks(self, size: int) -> Iterator[bytes]:
        total = 0
        for chunk in self.response.stream(size, decode_content=True):
            total += len(chunk)
            if total > self.max_bytes:
                raise URLRefused(
                    f"The download is larger than ATLAS_URL_MAX_BYTES ({self.max_bytes} bytes)."
                )
            if time.monotonic() > self.deadline:
                raise URLRefused("The download took longer than ATLAS_URL_TOTAL_TIMEOUT_SECONDS.")
            yield chunk


def _same_origin(a: Target, b: Target) -> bool:
    return a.origin == b.origin


@contextmanager
def fetch(url: str, headers: Mapping[str, str] | None = None) -> Iterator[Download]:
    """GET ``url`` through the guard; yield the final answer (status < 300 or an error status).

    ``headers`` (possibly secrets) are sent to the URL's own origin only: a
    redirect to another origin drops them, and an https URL may not redirect
    to plain http.
    """
    timeout = float(settings.ATLAS_HTTP_TIMEOUT_SECONDS)
    deadline = time.monotonic() + float(settings.ATLAS_URL_TOTAL_TIMEOUT_SECONDS)
    max_bytes = int(settings.ATLAS_URL_MAX_BYTES)
    first = target = check(url)
    current = url
    for _hop in range(int(settings.ATLAS_URL_MAX_REDIRECTS) + 1):
        sent = {"Host": _host_header(target), "Accept-Encoding": "identity", "User-Agent": "Atlas"}
        if _same_origin(target, first):
            sent.update(headers or {})
        pool = _pool(target, timeout)
        try:
            response = pool.urlopen(
                "GET",
                target.path,
                headers=sent,
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError:
            pool.close()
            raise
        try:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise URLRefused(f"HTTP {response.status} redirect without a Location.")
                nxt = urljoin(current, location)
                hop = check(nxt)
                if target.scheme == "https" and hop.scheme == "http":
                    raise URLRefused("An https URL may not redirect to plain http.")
                current, target = nxt, hop
                continue
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise URLRefused(
                    f"The download is larger than ATLAS_URL_MAX_BYTES ({max_bytes} bytes)."
                )
            yield Download(response, current, deadline, max_bytes)
            return
        finally:
            response.release_conn()
            response.close()
            pool.close()
    raise URLRefused(
        f"More than ATLAS_URL_MAX_REDIRECTS ({settings.ATLAS_URL_MAX_REDIRECTS}) redirects."
    )


@dataclass(frozen=True)
class Answer:
    """What a POST got back: the status and, when the server asked for a pause, its Retry-After seconds."""

    status: int
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def post(url: str, body: bytes, headers: Mapping[str, str] | None = None, *, timeout: float | None = None) -> Answer:
    """POST ``body`` to ``url`` through the guard (the address checked at connect time); no redirects.

    A redirect is returned as its status, not followed (a webhook that moved is
    a configuration to fix). Raises URLRefused, or urllib3's errors for a
    connection that failed or timed out; reads at most 64 KiB of the answer.
    """
    timeout = float(settings.ATLAS_HTTP_TIMEOUT_SECONDS if timeout is None else timeout)
    target = check(url)
    sent = {"Host": _host_header(target), "User-Agent": "Atlas", "Accept-Encoding": "identity", **(headers or {})}
    pool = _pool(target, timeout)
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers=sent, redirect=False, preload_content=False,
            assert_same_host=False,
        )
        try:
            response.read(64 * 1024)
            return Answer(response.status, _retry_after(response.headers.get("Retry-After")))
        finally:
            response.release_conn()
            response.close()
    finally:
        pool.close()
