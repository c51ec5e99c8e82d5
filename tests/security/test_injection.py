"""SQL metacharacters in every query parameter and path id the API documents, and header injection.

Every value reaches the database only as a bound parameter, so each payload must be an ordinary
miss (400, 404, 422 or an empty page), never a 5xx, and nothing may change: the stored consent and
the audit log are compared before and after. A NUL character used to be a 500 on PostgreSQL (which
cannot store it) and a miss on SQLite; it is now refused up front on both (gateway/core/boundary.py).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.http import MODULES, openapi
from tests.conftest import ISSUER
from tests.factories import audit_entries, bearer, consent_row, make_app_client, make_consent, token_for

PAYLOADS = [
    "' OR '1'='1",
    "1' OR 1=1 --",
    '"; DROP TABLE consents; --',
    "1; SELECT pg_sleep(10)",
    "' UNION SELECT client_secret_hash FROM oauth_clients --",
    "%",
    "_",
    "\\",
    "cns_%' OR id LIKE '%",
    "\x00",
    "'\x00'",
    "../../../../etc/passwd",
    "\u2603\u2032\u02bc\uff07",  # look-alike quotes
]

SPEC = openapi.build(MODULES, ISSUER)
QUERY_PARAMETERS = [(path, parameter["name"]) for path, item in SPEC["paths"].items() for method, op in item.items()
                    if method == "get" for parameter in op.get("parameters", []) if parameter["in"] == "query"]
PATH_IDS = [(method.upper(), path) for path, item in SPEC["paths"].items() for method in item if "{" in path]


@pytest.fixture
def setting(app: Flask, client: FlaskClient) -> dict[str, Any]:
    owner = make_app_client(app)
    consent_id = make_consent(app, owner.client_id)
    return {"token": token_for(client, owner), "consent_id": consent_id}


def _unchanged(app: Flask, setting: dict[str, Any], entries_before: int) -> None:
    assert consent_row(app, setting["consent_id"]) == ("active", 0)
    # Reads may audit nothing; the only entries added by these requests are none at all.
    assert len(audit_entries(app)) == entries_before


def test_metacharacters_in_every_query_parameter(app: Flask, client: FlaskClient, setting: dict[str, Any]) -> None:
    # One database for all of them (a fresh PostgreSQL database per parameter would cost minutes).
    before = len(audit_entries(app))
    failures: list[tuple[str, str, str, object]] = []
    for path, name in QUERY_PARAMETERS:
        for payload in PAYLOADS:
            response = client.get(f"{path}?{urllib.parse.urlencode({name: payload})}",
                                  headers=bearer(setting["token"]))
            if response.status_code >= 500:
                failures.append((path, name, payload, response.status_code))
            elif response.status_code == 200 and path == "/v1/consents" and name == "subject" \
                    and response.get_json()["consents"] != []:
                failures.append((path, name, payload, "the filter widened"))
    assert failures == []
    # The export is the one read that audits itself (who exported which range), once per export served.
    _unchanged(app, setting, before + len(audit_entries(app, "audit.exported")))


def test_metacharacters_in_every_path_id(app: Flask, client: FlaskClient, setting: dict[str, Any]) -> None:
    before = len(audit_entries(app))
    failures = []
    for method, path in PATH_IDS:
        name = path[path.index("{") + 1:path.index("}")]
        for payload in PAYLOADS:
            url = path.replace("{" + name + "}", urllib.parse.quote(payload, safe=""))
            kwargs: dict[str, Any] = {"headers": bearer(setting["token"])}
            if method == "POST":
                kwargs["json"] = {"outcome": "completed"} if path.endswith("/outcome") else {}
            response = client.open(url, method=method, **kwargs)
            if response.status_code not in (303, 400, 403, 404, 405, 409, 422):
                failures.append((method, path, payload, response.status_code))
    assert failures == []
    _unchanged(app, setting, before)


def test_the_request_id_header_cannot_smuggle_anything(client: FlaskClient) -> None:
    for hostile in ("abc Set-Cookie: session=x", "x" * 5000, "<script>", "req_ok_but'quote", "\x00\x00\x00\x00"):
        response = client.get("/healthz", headers={"X-Request-Id": hostile})
        echoed = response.headers["X-Request-Id"]
        assert echoed.startswith("req_")
        assert echoed != hostile
        assert "Set-Cookie" not in response.headers
    # Line breaks cannot even be sent in a header value (the client refuses, and on the wire they end
    # the header); tests/security/test_http_limits.py sends them raw to a real server.


def test_idempotency_keys_with_line_breaks_are_refused(app: Flask, client: FlaskClient,
                                                       setting: dict[str, Any]) -> None:
    for hostile in ("a\tb", "key with spaces", "é", "x" * 201):
        response = client.post("/v1/consent-requests", headers={**bearer(setting["token"]), "Idempotency-Key": hostile},
                               json={"operations": ["face_swap"], "purpose": "x"})
        assert response.status_code == 400
        assert response.get_json()["code"] == "invalid_idempotency_key"
