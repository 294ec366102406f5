"""Paging: numbered pages for catalogues, cursors for histories that grow while you read."""

from __future__ import annotations

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """Sources, datasets, pipelines: small, stable lists; ``?page=2&page_size=100``."""

    page_size_query_param = "page_size"
    max_page_size = 500


class CursorPagination(pagination.CursorPagination):
    """Runs, step runs, audit events: new rows arrive at the top while a client pages,
    so offsets would skip or repeat rows; a cursor does not."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"
