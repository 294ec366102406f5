"""The API's JSON parser: bounded depth, and a clear 400 for what Python's own parser cannot take.

``json.loads`` recurses once per level of nesting: a body of 100,000 ``[`` exhausted
the interpreter's recursion (a 500). A body is refused before it is decoded when its
brackets nest deeper than :data:`MAX_DEPTH` — counted in one pass over its bytes,
outside strings — and any other decoding failure is the parser's usual 400. The body's
size is bounded before it is read (``atlas.request_limits``).
"""

from __future__ import annotations

import io
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Deeper than any payload Atlas accepts (an OpenLineage event with facets nests about 10 levels).
MAX_DEPTH = 64
# Brackets and quoted strings (escapes included), the only tokens that matter for depth.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (strings skipped), without decoding it."""
    depth = deepest = 0
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        depth = json_depth(body)
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON nested {depth} levels deep; at most {MAX_DEPTH} are accepted.")
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError as exc:  # belt and braces: the depth check should make this unreachable
            raise ParseError(f"JSON nested too deeply; at most {MAX_DEPTH} levels are accepted.") from exc
