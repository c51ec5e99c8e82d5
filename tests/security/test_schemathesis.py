"""Property-based fuzzing of every documented operation (schemathesis over /openapi.json, in process).

Each operation gets a bounded number of generated requests, authenticated with a token holding every
scope, on a fresh database of each backend. Two properties must hold for all of them: no 5xx, and
every response matches what the document says (status, media type, schema). Where they disagreed,
the document or the code was fixed (docs/RELIABILITY.md lists which).

Operations are listed at collection time from the same builder that serves /openapi.json, one test
each (schemathesis' own pytest loader does not run under pytest 9).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gateway.http import MODULES, openapi
from tests.conftest import ISSUER
from tests.factories import bearer, make_app_client, register_algorithm, token_for

MAX_EXAMPLES = 12
OPERATIONS = [(method.upper(), path) for path, item in openapi.build(MODULES, ISSUER)["paths"].items()
              for method in item]


@pytest.fixture
def api_schema(app: Flask) -> Any:
    # A registered algorithm lets generated decisions reach the enforcement code, not only "unknown".
    register_algorithm(app, "FN-FUZZ-0001", upstream_url="http://127.0.0.1:9/edit")
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.fixture
def all_scopes(app: Flask) -> dict[str, str]:
    return bearer(token_for(app.test_client(), make_app_client(app, name="Fuzzer")))


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_error_and_every_answer_matches_the_document(
    api_schema: Any, all_scopes: dict[str, str], method: str, path: str
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=all_scopes, checks=[not_a_server_error, response_schema_conformance])

    fuzz()
