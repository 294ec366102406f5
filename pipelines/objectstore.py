"""S3-compatible object storage sources: ``s3://bucket/prefix/*.csv.gz``, listed, then streamed one object at a time.

* **Where**: AWS's own endpoints by default; any other endpoint (MinIO, Ceph, a local
  test server) only when its URL is listed in ``ATLAS_S3_ENDPOINTS`` by the operator.
  The source's ``endpoint_url`` option names one of them; nothing else is ever contacted.
* **Credentials**: never stored. The options reference them (``access_key_id`` and
  ``secret_access_key``, optionally ``session_token``: ``env:ATLAS_SOURCE_SECRET_…``, see
  ``pipelines.credentials``); without references the standard ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY`` of the environment are used; ``"anonymous": true`` reads a
  public bucket unsigned. Nothing else is tried (no instance metadata service, no files).
* **Listing**: the part of the key before the first wildcard is the listing prefix; keys
  match the glob as files do (``*``, ``?`` and ``[...]`` stay within one ``/`` level,
  ``**`` crosses levels). At most ``ATLAS_S3_MAX_OBJECTS`` objects.
* **Streaming**: each object is written to a temporary file in ``CHUNK``-sized pieces
  (never whole in memory), then made ready by the same input hygiene as a local file
  (compression, encodings, checksum); a file already loaded is skipped by its checksum.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from atlas.warehouse.filereader import IngestError

from . import credentials

OPTION_KEYS = {"endpoint_url", "region", "access_key_id", "secret_access_key", "session_token", "anonymous"}
SECRET_OPTIONS = ("access_key_id", "secret_access_key", "session_token")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAGIC = re.compile(r"[*?\[]")

# What an S3 error code means, in the operator's words (the service's own text is not shown).
ERRORS = {
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "no such object",
    "404": "no such object",
    "AccessDenied": "access denied: the credentials may not read it",
    "403": "access denied: the credentials may not read it",
    "InvalidAccessKeyId": "the access key is not known to the service",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "ExpiredToken": "the session token has expired",
    "InvalidObjectState": "the object is archived and cannot be read",
}


@dataclass(frozen=True)
class Location:
    bucket: str
    key: str  # a key or a glob of keys

    @property
    def prefix(self) -> str:
        """The listing prefix: the key up to its first wildcard."""
        match = MAGIC.search(self.key)
        return self.key[: match.start()] if match else self.key

    @property
    def is_glob(self) -> bool:
        return MAGIC.search(self.key) is not None

    def url(self, key: str | None = None) -> str:
        return f"s3://{self.bucket}/{self.key if key is None else key}"


def parse(location: str) -> Location:
    """``s3://bucket/key-or-glob`` or raise ValueError with a message fit to show."""
    if not (location or "").startswith("s3://"):
        raise ValueError("An object storage source needs an s3://bucket/key location, e.g. s3://data/exports/*.csv.gz.")
    rest = location[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise ValueError(f"{bucket!r} is not a valid bucket name (3-63 lower-case letters, digits, dots, hyphens).")
    if not key or key.endswith("/"):
        raise ValueError("Name an object or a glob of objects after the bucket, e.g. s3://data/exports/*.csv.")
    if "@" in bucket or any(c in key for c in "\r\n\x00"):
        raise ValueError("The location holds characters an object key cannot have.")
    return Location(bucket, key)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A key glob as a regex: ``*``/``?``/``[...]`` within one ``/`` level, ``**`` across levels."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def allowed_endpoints() -> list[str]:
    return [str(e).strip().rstrip("/") for e in settings.ATLAS_S3_ENDPOINTS if str(e).strip()]


def endpoint_problem(endpoint: object) -> str | None:
    """Why a source may not use ``endpoint`` (None: AWS's own, or one the operator listed)."""
    if endpoint in (None, ""):
        return None
    if not isinstance(endpoint, str):
        return "endpoint_url must be a URL string."
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return "endpoint_url is malformed."
    if parts.scheme not in ("http", "https") or parts.username or parts.password or parts.query:
        return "endpoint_url must be an http(s) URL with neither credentials nor a query."
    if endpoint.rstrip("/") not in allowed_endpoints():
        listed = ", ".join(allowed_endpoints()) or "none"
        return (
            f"The endpoint {endpoint} is not allowed: an operator must list it in ATLAS_S3_ENDPOINTS"
            f" (allowed: {listed})."
        )
    return None


def clean(location: str, options: dict) -> dict[str, str]:
    """Validation errors of an object storage source, by field."""
    errors: dict[str, str] = {}
    try:
        parse(location)
    except ValueError as exc:
        errors["location"] = str(exc)
    if problem := endpoint_problem(options.get("endpoint_url")):
        errors["options"] = problem
        return errors
    if "region" in options and not (isinstance(options["region"], str) and re.match(r"^[a-z0-9-]{1,40}$", options["region"])):
        errors["options"] = "region must be a region name such as eu-west-1."
    elif "anonymous" in options and not isinstance(options["anonymous"], bool):
        errors["options"] = "anonymous must be true or false."
    elif options.get("anonymous") and any(k in options for k in SECRET_OPTIONS):
        errors["options"] = "An anonymous source reads a public bucket: it takes no credentials."
    elif bool(options.get("access_key_id")) != bool(options.get("secret_access_key")):
        errors["options"] = "Reference both access_key_id and secret_access_key, or neither (then the environment's AWS_ keys are used)."
    else:
        for key in SECRET_OPTIONS:
            if key in options and (problem := credentials.check_reference(key, options[key])):
                errors["options"] = problem
                break
    return errors


def _keys(options: dict) -> dict[str, str] | None:
    """The credentials to sign with (None: anonymous). Raises IngestError, never showing a value."""
    if options.get("anonymous"):
        return None
    refs = {k: options[k] for k in SECRET_OPTIONS if options.get(k)}
    if refs:
        try:
            return credentials.resolve(refs)
        except credentials.CredentialError as exc:
            raise IngestError(f"Cannot read the object storage source: {exc}") from exc
    found = {
        "access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "session_token": os.environ.get("AWS_SESSION_TOKEN", ""),
    }
    if not (found["access_key_id"] and found["secret_access_key"]):
        raise IngestError(
            "The object storage source has no credentials: reference them in its options"
            f' ({{"access_key_id": "env:{credentials.prefix()}S3_KEY_ID", "secret_access_key":'
            f' "env:{credentials.prefix()}S3_SECRET"}}), set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY'
            ' on the workers, or set "anonymous": true for a public bucket.'
        )
    return {k: v for k, v in found.items() if v}


def client(options: dict):
    """A boto3 S3 client for the source: its endpoint (checked again here), region and credentials only."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    endpoint = options.get("endpoint_url") or None
    if problem := endpoint_problem(endpoint):
        raise IngestError(f"Refused to read the object storage source: {problem}")
    keys = _keys(options)
    timeout = float(settings.ATLAS_HTTP_TIMEOUT_SECONDS)
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 4, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else {},
        signature_version=UNSIGNED if keys is None else None,
    )
    session = boto3.session.Session(
        aws_access_key_id=(keys or {}).get("access_key_id"),
        aws_secret_access_key=(keys or {}).get("secret_access_key"),
        aws_session_token=(keys or {}).get("session_token"),
        region_name=options.get("region") or "us-east-1",
    )
    return session.client("s3", endpoint_url=endpoint, config=config), [*(keys or {}).values()]


def failure(exc: Exception, where: str, secrets: list[str]) -> IngestError:
    """An S3/transport error as an IngestError naming what failed; never the service's raw text or a secret."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        meaning = ERRORS.get(code, "the service refused the request")
        return IngestError(credentials.redact(f"{where}: {meaning} ({code or 'no code'}).", secrets))
    if isinstance(exc, BotoCoreError):
        return IngestError(
            credentials.redact(f"{where}: {exc.__class__.__name__} (cannot reach the object storage endpoint).", secrets)
        )
    return IngestError(f"{where}: {exc.__class__.__name__}.")


def list_keys(s3, loc: Location, secrets: list[str]) -> list[str]:
    """The keys behind ``loc``, in key order; a plain key must exist. Raises IngestError."""
    from botocore.exceptions import BotoCoreError, ClientError

    limit = int(settings.ATLAS_S3_MAX_OBJECTS)
    try:
        if not loc.is_glob:
            s3.head_object(Bucket=loc.bucket, Key=loc.key)
            return [loc.key]
        match = glob_regex(loc.key)
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/") and match.match(obj["Key"]):
                    keys.append(obj["Key"])
                    if len(keys) > limit:
                        raise IngestError(
                            f"{loc.url()}: more than ATLAS_S3_MAX_OBJECTS ({limit}) objects match; narrow the glob."
                        )
    except (BotoCoreError, ClientError) as exc:
        raise failure(exc, loc.url(), secrets) from exc
    if not keys:
        raise IngestError(f"No object matches {loc.url()}.")
    return sorted(keys)


def download(s3, loc: Location, key: str, path: str, chunk: int, secrets: list[str]) -> int:
    """Stream one object to ``path`` in ``chunk``-sized pieces; return its size. Raises IngestError."""
    from botocore.exceptions import BotoCoreError, ClientError

    size = 0
    try:
        body = s3.get_object(Bucket=loc.bucket, Key=key)["Body"]
        try:
            with open(path, "wb") as out:
                for piece in body.iter_chunks(chunk):
                    out.write(piece)
                    size += len(piece)
        finally:
            body.close()
    except (BotoCoreError, ClientError) as exc:
        raise failure(exc, loc.url(key), secrets) from exc
    return size


@dataclass(frozen=True)
class Listed:
    location: Location
    client: Any
    keys: list[str]
    secrets: list[str]


def objects(options: dict, location: str) -> Listed:
    """Parse, connect and list (raises IngestError): what ``iter_downloads`` then fetches."""
    try:
        loc = parse(location)
    except ValueError as exc:
        raise IngestError(str(exc)) from exc
    s3, secrets = client(options)
    return Listed(loc, s3, list_keys(s3, loc, secrets), secrets)


def iter_downloads(listed: Listed, tmp: str, chunk: int) -> Iterator[tuple[str, str]]:
    """``(label, local path)`` of each object in turn; the caller removes each before the next is fetched."""
    for n, key in enumerate(listed.keys):
        path = os.path.join(tmp, f"object-{n}")
        download(listed.client, listed.location, key, path, chunk, listed.secrets)
        yield listed.location.url(key), path
