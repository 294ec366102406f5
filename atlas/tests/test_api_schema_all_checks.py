"""Schemathesis with every check, for every role (issue 17: "schemathesis with all checks, not only
'no 5xx', passes for every role").

Every check schemathesis ships runs (status codes, content types, response schemas and headers,
negative data refused, positive data accepted, missing auth, unsupported methods ...), on valid
and on invalid requests, as a superuser ("admin") and as each role of ``atlas.roles``, through the
WSGI app in this process. Examples are bounded so the whole test takes a couple of minutes on a
quiet machine. The draw is derandomized (the suite judges the code, not the luck of one draw);
``ATLAS_FUZZ_EXPLORE=1`` draws new examples to look for new failures. Each operation's requests are drawn
once and sent as every role (admin the first three, each role the first). Every failure is collected and
reported together (operation, role, mode, check; the first per operation, role and mode, as drawn, not
shrunk), so one run shows all there is to fix.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from atlas.roles import ROLES

from .test_api_schema_fuzz import simple_pipeline_for_fuzz, wsgi_in_test_transaction  # noqa: F401 (fixtures)

EXPLORE = os.environ.get("ATLAS_FUZZ_EXPLORE") == "1"  # new examples each run (to hunt), else the fixed draw

EXAMPLES = {"admin": 3}
DEFAULT_EXAMPLES = 1
# Hunting knobs (with ATLAS_FUZZ_EXPLORE=1): ATLAS_FUZZ_ONLY="GET /api/v1/runs/,DELETE /api/v1/column-policies/{id}/"
# draws only for those operations, ATLAS_FUZZ_EXAMPLES=200 that many examples per operation and role.
ONLY = {item.strip() for item in os.environ.get("ATLAS_FUZZ_ONLY", "").split(",") if item.strip()}
if os.environ.get("ATLAS_FUZZ_EXAMPLES"):
    EXAMPLES = {"admin": int(os.environ["ATLAS_FUZZ_EXAMPLES"])}
    DEFAULT_EXAMPLES = int(os.environ["ATLAS_FUZZ_EXAMPLES"])
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Nothing is tolerated: a 5xx, an undocumented status, a body, content type or header that breaks the
# schema, a missing-auth or method answer out of line, a schema-valid request refused as malformed
# (ST202: 400 is only for what breaks the schema; a rule it cannot state is a documented 409) and a
# schema-violating request accepted (ST201: filters, booleans, ordering and page sizes are strict) all fail.


def _headers(user) -> dict[str, str]:
    from knox.models import AuthToken

    return {"Authorization": f"Token {AuthToken.objects.create(user=user)[1]}"}


def _cases(operation, mode: GenerationMode, count: int) -> list:
    """The operation's first ``count`` requests of ``mode``, as hypothesis draws them (none where no
    request of that mode exists: no parameters and no body to break)."""
    drawn: list = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=not EXPLORE)
    def draw(case):
        drawn.append(case)

    try:
        draw()
    except Unsatisfiable:
        return []
    return drawn


def _users(django_user_model):
    from atlas.api.testing import user_with_role

    yield "admin", django_user_model.objects.create_superuser("fuzz-admin", "fuzz@example.invalid", "pw")
    for role in ROLES:
        yield role.name, user_with_role(role.name, username=f"fuzz-{role.name.lower()}")


@pytest.mark.slow
@pytest.mark.once_on_postgres  # the API over the metadata: make test runs it in the PostgreSQL pass only
def test_every_check_passes_for_every_role(wsgi_in_test_transaction, django_user_model, wh, simple_pipeline_for_fuzz):  # noqa: F811
    schema_headers = _headers(django_user_model.objects.create_superuser("schema", "s@example.invalid", "pw"))
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_in_test_transaction, headers=schema_headers)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith("/api/v1/") and not op.path.startswith("/api/v1/lineage")]
    if ONLY:
        operations = [op for op in operations if f"{op.method.upper()} {op.path}" in ONLY]
    # Drawn once for every role: the draw is derandomized, so every role was sent the same requests, and
    # drawing them again for each of the five was about 40 % of this test's CPU (48 -> 30 s, 2026-12-06).
    most = max([DEFAULT_EXAMPLES, *EXAMPLES.values()])
    cases = {(operation, mode): _cases(operation, mode, most) for operation in operations for mode in MODES}
    failures: list[str] = []
    for role, user in list(_users(django_user_model)):
        headers = _headers(user)
        for (operation, mode), drawn in cases.items():
            for case in drawn[: EXAMPLES.get(role, DEFAULT_EXAMPLES)]:
                try:
                    case.call_and_validate(headers=headers)
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 — collected, reported at the end
                    where = f"{role:8} {mode.value:8} {operation.method.upper()} {operation.path}"
                    text = " | ".join(str(exc).strip().splitlines())[:3000]
                    failures.append(f"{where}: {text}")
                    break  # the operation's first failure for this role and mode
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures)

