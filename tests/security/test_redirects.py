"""Open redirects: the portal sends a person only to a URI the app registered, character for character.

(The happy paths, grant and decline back to the registered URI, are in tests/gateway/consents/test_portal.py.)
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from gateway.cli import main
from tests.factories import PortalVisitor, bearer, create_consent_request, make_app_client, token_for

REGISTERED = "https://app.example/consent/done?from=gateway"

NEAR_MISSES = [
    "https://app.example/consent/done?from=gateway&next=https://evil.example",
    "https://app.example/consent/done?from=gateway#https://evil.example",
    "https://app.example/consent/done?from=gateway/../../evil",
    "https://app.example/consent/done",
    "https://APP.example/consent/done?from=gateway",
    "https://app.example.evil.example/consent/done?from=gateway",
    "https://app.example@evil.example/consent/done?from=gateway",
    "https://evil.example/?https://app.example/consent/done?from=gateway",
    "//evil.example/consent/done?from=gateway",
    "https://app.example/consent/done?from=gateway%0d%0aSet-Cookie:%20x=1",
    "javascript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
]


@pytest.mark.parametrize("uri", NEAR_MISSES)
def test_only_the_registered_uri_is_accepted(app: Flask, client: FlaskClient, uri: str) -> None:
    token = token_for(client, make_app_client(app, redirect_uris=(REGISTERED,)))
    refused = create_consent_request(client, token, redirect_uri=uri, expect=422)
    assert refused["code"] in ("redirect_uri_not_registered", "validation_failed")


def test_the_person_goes_back_to_the_stored_uri_whatever_the_form_says(app: Flask, client: FlaskClient) -> None:
    token = token_for(client, make_app_client(app, redirect_uris=(REGISTERED,)))
    created = create_consent_request(client, token, redirect_uri=REGISTERED)
    visitor = PortalVisitor(app)
    visitor.prove(created["id"])
    html = visitor.page(f"/consent/{created['id']}?redirect_uri=https://evil.example&next=https://evil.example")
    response = visitor.client.post(f"/consent/{created['id']}/decision?next=https://evil.example", data={
        "csrf_token": visitor.field(html, "csrf_token"), "notice_sha256": visitor.field(html, "notice_sha256"),
        "locale": "en", "operations": ["face_swap"], "action": "approve",
        "redirect_uri": "https://evil.example/steal", "next": "https://evil.example"})
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "app.example", "/consent/done")
    assert parse_qs(location.query) == {"from": ["gateway"], "request_id": [created["id"]], "status": ["granted"]}
    # The portal's own redirects stay on the gateway, whatever is appended.
    for path in ("/me/consents/cns_x?next=https://evil.example", "/me/consents/cns_x/withdraw?next=//evil.example"):
        moved = visitor.client.get(path)
        assert moved.status_code in (303, 404)
        if moved.status_code == 303:
            assert urlsplit(moved.headers["Location"]).netloc in ("", "gateway.test")
    assert client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(token)).get_json()[
        "status"] == "granted"


@pytest.mark.parametrize("uri", [
    "https://app.example/back\r\nSet-Cookie: session=attacker",
    "https://app.example/back\tx",
    'https://app.example/back"><script>alert(1)</script>',
    "https://app.example;script-src *;/back",
    "http://app.example/back",  # plain http only for loopback
    "javascript:alert(1)",
    "https://user:pw@app.example/back",
    "https://app.example/back#fragment",
])
def test_registration_refuses_uris_that_could_redirect_or_inject(runner: FlaskCliRunner, uri: str) -> None:
    result = runner.invoke(main, ["clients", "create", "--name", "X", "--scope", "consent:read",
                                  "--redirect-uri", uri, "--json"])
    assert result.exit_code == 2, result.output
    assert "redirect URI" in result.output
