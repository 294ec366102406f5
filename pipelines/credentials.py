"""Credentials of sources: referenced from the environment, never stored or shown in clear.

A URL source that needs a token names it, it does not hold it: its options
carry ``headers`` (and ``params``, for APIs that want the token in the query)
whose values are references ``env:NAME``, resolved only when the file is
fetched and never written back, logged or put in an error. Only variables
whose name starts with ``ATLAS_SOURCE_SECRET_PREFIX`` (default
``ATLAS_SOURCE_SECRET_``) may be referenced — otherwise a source could send
SECRET_KEY or PII_HASH_KEY to any server as a header. Literal header values
are allowed only for an allowlist of headers that never carry a secret.

The URL itself may not hold credentials: ``user:password@`` or a
secret-looking query parameter (``token``, ``api_key``, ``sig`` ...) is
refused at save with a message saying how to reference the secret instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings

REF_RE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# Headers whose value may be written literally (none of them carries a secret).
LITERAL_HEADERS = frozenset(
    {"accept", "accept-language", "user-agent", "cache-control", "if-none-match"}
)
# Headers Atlas sets itself on every hop.
RESERVED_HEADERS = frozenset(
    {"host", "accept-encoding", "content-length", "transfer-encoding", "connection"}
)
# Words that make a query parameter's name look like it carries a secret.
SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "key",
        "apikey",
        "signature",
        "sig",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "jwt",
        "sas",
        "accesstoken",
        "apitoken",
        "privatekey",
        "clientsecret",
    }
)
HOW_TO = (
    "Put the secret in an environment variable named {prefix}… and reference it in the"
    " source's options as env:{prefix}<NAME>, e.g. the header Authorization set to env:{prefix}API_TOKEN"
    " in the options' headers, or the query parameter api_key set to env:{prefix}API_KEY in its params."
)


class CredentialError(ValueError):
    """A credential in clear, or a reference that cannot be used. Messages never hold a value."""


def prefix() -> str:
    return str(settings.ATLAS_SOURCE_SECRET_PREFIX)


def how_to() -> str:
    return HOW_TO.format(prefix=prefix())


def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w}
    return words | {re.sub(r"[^a-z0-9]+", "", name.lower())}


def secret_looking(name: str) -> bool:
    return bool(_words(name) & SECRET_WORDS)


def url_credential_problem(url: str) -> str | None:
    """Why ``url`` holds a credential in clear (user:password@, a secret-looking parameter)."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return None
    if "@" in parts.netloc:
        return (
            "The URL holds credentials (user:password@host); they would be stored in clear."
            f" {how_to()}"
        )
    secret = sorted(
        {k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if secret_looking(k)}
    )
    if secret:
        return (
            f"The URL's query parameter(s) {', '.join(secret)} look like a secret;"
            " it would be stored in clear."
            f" {how_to()}"
        )
    return None


def safe_url(url: str) -> str:
    """``url`` fit to show or store: no userinfo, secret-looking parameter values replaced."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return "(malformed URL)"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [
            (k, "***" if secret_looking(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _check_ref(where: str, value: object) -> str | None:
    match = REF_RE.match(value) if isinstance(value, str) else None
    if not match:
        return (
            f"{where} must be a reference env:{prefix()}NAME, never the secret itself. {how_to()}"
        )
    if not match.group(1).startswith(prefix()):
        return f"{where} may only reference environment variables named {prefix()}…"
    return None


def check_reference(where: str, value: object) -> str | None:
    """Why ``value`` is not a usable secret reference (``env:`` + the allowed prefix), or None."""
    return _check_ref(where, value)


def check_fetch_options(options: Mapping) -> str | None:
    """What is wrong with a URL source's ``headers`` / ``params`` options, or None."""
    headers = options.get("headers", {})
    if not isinstance(headers, dict):
        return 'headers must be an object, e.g. {"Authorization": "env:' + prefix() + 'TOKEN"}.'
    for name, value in headers.items():
        if not HEADER_NAME_RE.match(str(name)) or name.lower() in RESERVED_HEADERS:
            return f"headers: {name!r} is not a header Atlas may send."
        if (
            name.lower() in LITERAL_HEADERS
            and isinstance(value, str)
            and not value.startswith("env:")
        ):
            if "\r" in value or "\n" in value:
                return f"headers: {name} cannot contain a line break."
            continue
        if problem := _check_ref(f"headers: {name}", value):
            return problem
    params = options.get("params", {})
    if not isinstance(params, dict):
        return 'params must be an object, e.g. {"api_key": "env:' + prefix() + 'API_KEY"}.'
    for name, value in params.items():
        if problem := _check_ref(f"params: {name}", value):
            return problem
    return None


def resolve(refs: Mapping[str, str]) -> dict[str, str]:
    """References resolved from the environment (at fetch time only); literals as they are."""
    out: dict[str, str] = {}
    for key, value in refs.items():
        match = REF_RE.match(value)
        if not match:
            out[key] = value
            continue
        name = match.group(1)
        if not name.startswith(prefix()):
            raise CredentialError(
                f"{key}: only environment variables named {prefix()}… may be referenced."
            )
        if not os.environ.get(name):
            raise CredentialError(
                f"{key}: the environment variable {name} is not set on this machine."
            )
        out[key] = os.environ[name]
    return out


def with_params(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to its query (it holds secrets: never store or show it)."""
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(list(params.items()))) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ***."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def database_url_secrets(url: str) -> list[str]:
    """The parts of a database URL that must never appear in a message: the URL and its password."""
    try:
        parts = urlsplit(url)
        password = parts.password
        in_query = [v for k, v in parse_qsl(parts.query) if k == "password"]
    except ValueError:
        password, in_query = None, []
    return [url, password or "", *in_query]


def resolve_database_url(url: str) -> str:
    """A source database URL with its ``password=env:NAME`` parameter resolved (at connect time only).

    ``ATLAS_SOURCE_DATABASES`` may name the password instead of holding it:
    ``mysql://atlas_reader@db:3306/shop?password=env:ATLAS_SOURCE_SECRET_SHOP`` (PostgreSQL's
    driver reads a ``password`` parameter too). The result holds the secret: never store or show it.
    """
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url
    if not any(k == "password" and REF_RE.match(v) for k, v in query):
        return url
    resolved = [(k, resolve({k: v})[k] if k == "password" else v) for k, v in query]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(resolved), parts.fragment))
