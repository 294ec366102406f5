"""Request and upload size limits, enforced before and while a body streams in, not after.

Django bounds a request's non-file fields (DATA_UPLOAD_MAX_MEMORY_SIZE) but
not its files, and Django REST framework reads a JSON body without any bound.
Two doors close that:

* ``RequestSizeLimitMiddleware`` answers 413 to a request whose declared size
  (Content-Length) is beyond what any allowed request can be, before a byte is
  read: a multipart body may hold one upload of ATLAS_UPLOAD_MAX_BYTES plus the
  form fields; any other body DATA_UPLOAD_MAX_MEMORY_SIZE.
* ``SizeLimitedUploadHandler`` counts a file's bytes as they stream and stops
  the upload the moment one passes ATLAS_UPLOAD_MAX_BYTES (the partial file is
  discarded, never stored); the refusal is noted on the request so the admin
  form can show it next to the field (``upload_refusal``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse, JsonResponse

REFUSAL_ATTR = "atlas_upload_refused"


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def upload_limit_message() -> str:
    limit = int(settings.ATLAS_UPLOAD_MAX_BYTES)
    return (
        f"The file is larger than the upload limit of {_mb(limit)}"
        f" (ATLAS_UPLOAD_MAX_BYTES = {limit} bytes)."
    )


def request_limit(content_type: str) -> tuple[int | None, str]:
    """The largest body a ``content_type`` request may declare, and the setting bounding it."""
    fields = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if content_type.lower().startswith("multipart/"):
        return int(settings.ATLAS_UPLOAD_MAX_BYTES) + int(fields or 0), "ATLAS_UPLOAD_MAX_BYTES"
    return (int(fields) if fields is not None else None), "DATA_UPLOAD_MAX_MEMORY_SIZE"


def too_large_message(setting: str, limit: int) -> str:
    if setting == "ATLAS_UPLOAD_MAX_BYTES":
        return f"The request is too large: {upload_limit_message()}"
    return (
        f"The request body is too large: the limit is {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    )


class RequestSizeLimitMiddleware:
    """413 for a request that declares a body larger than any allowed one; nothing of it is read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit, setting = request_limit(request.META.get("CONTENT_TYPE", ""))
        if limit is not None and length > limit:
            message = too_large_message(setting, limit)
            if request.path.startswith("/api/"):
                from atlas.api.exceptions import error_body

                return JsonResponse(error_body("request_too_large", message), status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class SizeLimitedUploadHandler(FileUploadHandler):
    """Stops an upload once a file passes ATLAS_UPLOAD_MAX_BYTES (first of FILE_UPLOAD_HANDLERS)."""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > int(settings.ATLAS_UPLOAD_MAX_BYTES):
            if self.request is not None:
                setattr(self.request, REFUSAL_ATTR, upload_limit_message())
            # The rest of the body is read and dropped (bounded by the middleware), so the
            # client still gets the form back with the error.
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler stores the file


def upload_refusal(request: HttpRequest) -> str | None:
    """Why this request's upload was refused, or None (parses the body if not done yet)."""
    if request.method == "POST" and request.content_type.startswith("multipart/"):
        request.FILES  # noqa: B018 - parsing is what sets the refusal
    return getattr(request, REFUSAL_ATTR, None)
