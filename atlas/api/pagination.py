"""Paging: numbered pages for catalogues, cursors for histories that grow while you read.

``page_size`` is checked (:func:`atlas.api.filters.strict_page_size`): a value outside 1..max is a
400, not silently replaced by the default, and the schema states the bounds.
"""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import NotFound

from .filters import page_size_parameter, strict_page_size


class _StrictPageSize:
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        return strict_page_size(request, self.page_size_query_param, self.max_page_size, self.page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        return [page_size_parameter(p["name"], self.max_page_size) if p["name"] == self.page_size_query_param else p
                for p in parameters]


class PageNumberPagination(_StrictPageSize, pagination.PageNumberPagination):
    """Sources, datasets, pipelines: small, stable lists; ``?page=2&page_size=100``.

    A page is a whole number written in digits: ``?page=`` (empty) or ``?page= 2`` is no page (404),
    not the first one (DRF reads an empty value as 1, and Python's int() skips the spaces).
    """

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit()) and raw not in self.last_page_strings:
            raise NotFound("Invalid page: a whole number from 1, in digits.")
        return super().get_page_number(request, paginator)


class CursorPagination(_StrictPageSize, pagination.CursorPagination):
    """Runs, step runs, audit events: new rows arrive at the top while a client pages,
    so offsets would skip or repeat rows; a cursor does not."""

    page_size = 50
    ordering = "-id"
