"""The contract: schemathesis over /openapi.json, positive, negative and stateful, on every backend.

Every operation gets a bounded number of generated requests, authenticated with a token holding every
scope, on a fresh database with something to find: a registered algorithm, a granted consent, an
allowed decision waiting for its outcome and a pending consent request, whose ids replace the generated
path parameters of positive cases (so that positive cases reach the code behind a real id, not only the
404 path). What must hold:

- positive (data the document allows): no 5xx, and every answer's status, media type and body are
  documented;
- negative (data the document forbids): no 5xx, every answer documented, and the request refused;
- stateful (following the document's links: create a request, read it; list consents, read and revoke
  one; decide, report the outcome): the same checks on each step.

`bench/contract.py` runs the same with many more examples (docs/RELIABILITY.md has its figures).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.http import MODULES, openapi
from tests.conftest import ISSUER
from tests.factories import bearer, make_app_client, make_consent, register_algorithm, token_for

MAX_EXAMPLES = 8
STATEFUL_EXAMPLES = 6
FILING = "FN-FUZZ-0001"
SPEC = openapi.build(MODULES, ISSUER)
OPERATIONS = [(method.upper(), path) for path, item in SPEC["paths"].items() for method in item]
# Negative data needs something to break: a parameter or a body.
CASES = [pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
         for method, path in OPERATIONS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or SPEC["paths"][path][method.lower()].get("parameters")
         or "requestBody" in SPEC["paths"][path][method.lower()]]
DOCUMENTED = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class World:
    schema: Any
    headers: dict[str, str]
    ids: dict[str, str]


@pytest.fixture
def world(app: Flask) -> World:
    register_algorithm(app, FILING, upstream_url="http://127.0.0.1:9/edit")
    fuzzer = make_app_client(app, name="Fuzzer")
    client = app.test_client()
    headers = bearer(token_for(client, fuzzer))
    consent_id = make_consent(app, fuzzer.client_id)
    decided = client.post("/v1/decisions", headers=headers, json={
        "operation": "face_swap", "algorithm": FILING, "consents": [consent_id],
        "media": [{"role": "source", "sha256": hashlib.sha256(b"fuzz").hexdigest()}]})
    assert decided.status_code == 201, decided.get_data(as_text=True)
    requested = client.post("/v1/consent-requests", headers=headers,
                            json={"operations": ["face_swap"], "purpose": "fuzzing the contract"})
    assert requested.status_code == 201
    ids = {"consent_id": consent_id, "decision_id": decided.get_json()["decision_id"],
           "request_id": requested.get_json()["id"], "filing_number": FILING}
    return World(schemathesis.openapi.from_wsgi("/openapi.json", app), headers, ids)


def _with_real_ids(case: Any, ids: dict[str, str]) -> None:
    for name in list(case.path_parameters or {}):
        if name in ids:
            case.path_parameters[name] = ids[name]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_answer_is_documented_and_forbidden_data_is_refused(world: World, method: str, path: str,
                                                                   mode: GenerationMode) -> None:
    operation = world.schema[path][method]
    checks = [*DOCUMENTED, negative_data_rejection] if mode is GenerationMode.NEGATIVE else DOCUMENTED

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            _with_real_ids(case, world.ids)
        case.call_and_validate(headers=world.headers, checks=checks)

    try:
        fuzz()
    except Unsatisfiable:
        # Nothing in the document constrains this operation's input (e.g. one free path segment).
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("no request the document forbids can be generated for this operation")


def test_following_the_links_keeps_every_answer_documented(world: World) -> None:
    machine = world.schema.as_state_machine()

    class Contract(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": world.headers}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, checks=DOCUMENTED)

    run_state_machine_as_test(Contract, settings=settings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=6, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
