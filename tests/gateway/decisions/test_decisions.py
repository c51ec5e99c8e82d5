"""POST /v1/decisions and its outcome: allow with a ticket, every deny reason, each audited; fail closed."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from consent import ticket_verifier
from gateway import create_app
from gateway.cli import main
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.decisions.models import DecisionRow
from tests.conftest import ISSUER, app_config
from tests.factories import (
    App,
    audit_entries,
    bearer,
    consent_row,
    end_consent,
    make_app_client,
    make_consent,
    register_algorithm,
    token_for,
)
from tests.gateway.conftest import FILING

SOURCE = hashlib.sha256(b"source image").hexdigest()
TARGET = hashlib.sha256(b"target image").hexdigest()
MEDIA = [{"role": "source", "sha256": SOURCE}, {"role": "target", "sha256": TARGET}]


def ask(client: FlaskClient, token: str, consents: list[str], *, operation: str = "face_swap",
        algorithm: str = FILING, media: list[dict[str, str]] | None = None) -> Any:
    return client.post("/v1/decisions", headers=bearer(token), json={
        "operation": operation, "algorithm": algorithm, "consents": consents,
        "media": MEDIA if media is None else media,
    })


def decision_rows(app: Flask) -> list[DecisionRow]:
    with app.app_context(), db.unit_of_work() as session:
        return list(session.scalars(select(DecisionRow)))


def test_allow_returns_a_ticket_bound_to_the_request(
    app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str
) -> None:
    consent_id = make_consent(app, edit_app.client_id)
    response = ask(client, token, [consent_id])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["allowed"] is True
    assert body["decision_id"].startswith("dec_")

    header = json.loads(base64.urlsafe_b64decode(body["ticket"].split(".")[0] + "=="))
    assert header["typ"] == "consent-ticket+jwt"
    assert header["alg"] == "EdDSA"
    jwks = client.get("/.well-known/jwks.json").get_json()
    claims = ticket_verifier.verify_ticket(
        body["ticket"], jwks, {"source": SOURCE, "target": TARGET}, utcnow(), issuer=ISSUER,
        audience=FILING, replay_cache=ticket_verifier.InMemoryReplayCache(),
    )
    assert claims["jti"] == body["decision_id"]
    assert claims["client_id"] == edit_app.client_id
    assert claims["operation"] == "face_swap"
    assert claims["consents"] == [consent_id]
    assert claims["media"] == {"source": SOURCE, "target": TARGET}
    assert 0 < claims["exp"] - claims["iat"] <= 120

    assert consent_row(app, consent_id) == ("active", 1)
    [entry] = audit_entries(app, "decision.allowed")
    assert entry["decision_id"] == body["decision_id"]
    assert entry["consent_id"] == consent_id
    assert entry["subject"].startswith("sub_")
    assert entry["client_id"] == edit_app.client_id
    assert entry["algorithm"] == FILING
    assert entry["media"] == {"source": SOURCE, "target": TARGET}
    assert entry["actor"] == {"type": "client", "id": edit_app.client_id}
    [row] = decision_rows(app)
    assert row.allowed
    assert row.ticket_expires_at is not None


Setup = Callable[[Flask, App], tuple[list[str], dict[str, Any]]]


def _active(**terms: Any) -> Setup:
    return lambda app, edit_app: ([make_consent(app, edit_app.client_id, **terms)], {})


def _ended(status: str) -> Setup:
    def setup(app: Flask, edit_app: App) -> tuple[list[str], dict[str, Any]]:
        consent_id = make_consent(app, edit_app.client_id)
        end_consent(app, consent_id, status)
        return [consent_id], {}

    return setup


def _other_apps(app: Flask, edit_app: App) -> tuple[list[str], dict[str, Any]]:
    return [make_consent(app, make_app_client(app, name="Other App").client_id)], {}


def _suspended(app: Flask, edit_app: App) -> tuple[list[str], dict[str, Any]]:
    runner = app.test_cli_runner()
    assert runner.invoke(main, ["algorithms", "suspend", FILING]).exit_code == 0
    return [make_consent(app, edit_app.client_id)], {}


def _used_up(app: Flask, edit_app: App) -> tuple[list[str], dict[str, Any]]:
    consent_id = make_consent(app, edit_app.client_id, max_uses=1)
    client = app.test_client()
    assert ask(client, token_for(client, edit_app), [consent_id]).status_code == 201
    return [consent_id], {}


DENIALS: dict[str, Setup] = {
    "missing_consent": lambda app, edit_app: ([], {}),
    "algorithm_not_registered": lambda app, edit_app: (
        [make_consent(app, edit_app.client_id)], {"algorithm": "FN-NOT-FILED"}),
    "algorithm_suspended": _suspended,
    "consent_not_found": lambda app, edit_app: (["cns_doesnotexist"], {}),
    "consent_not_for_client": _other_apps,
    "consent_withdrawn": _ended("withdrawn"),
    "consent_revoked": _ended("revoked"),
    "consent_expired": _active(not_before=utcnow() - timedelta(days=31), expires_at=utcnow() - timedelta(days=1)),
    "consent_exhausted": _used_up,
    "operation_not_consented": lambda app, edit_app: (
        [make_consent(app, edit_app.client_id, operations=("face_attribute_edit",))], {}),
    "algorithm_not_consented": _active(algorithms=("FN-SOMETHING-ELSE",)),
}


@pytest.mark.parametrize("reason", list(DENIALS))
def test_every_deny_reason_is_a_403_with_its_code_and_is_audited(
    *, app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str, reason: str
) -> None:
    consents, overrides = DENIALS[reason](app, edit_app)
    uses_before = {c: consent_row(app, c) for c in consents if c.startswith("cns_") and c != "cns_doesnotexist"}
    denied_before = len(audit_entries(app, "decision.denied"))

    response = ask(client, token, consents, **overrides)

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == reason
    assert problem["reason"] == reason
    assert problem["type"].endswith("/" + reason)
    assert problem["decision_id"].startswith("dec_")
    assert "ticket" not in problem
    # The deny was committed with its audit entry, and it used nothing up.
    entries = audit_entries(app, "decision.denied")
    assert len(entries) == denied_before + 1
    assert entries[-1]["reason"] == reason
    assert entries[-1]["decision_id"] == problem["decision_id"]
    assert entries[-1]["client_id"] == edit_app.client_id
    assert {c: consent_row(app, c) for c in uses_before} == uses_before
    row = next(r for r in decision_rows(app) if r.id == problem["decision_id"])
    assert (row.allowed, row.reason) == (False, reason)


def test_the_scope_follows_the_operations_modality(
    app: Flask, client: FlaskClient, edit_app: App, algorithm: str
) -> None:
    consent_id = make_consent(app, edit_app.client_id, operations=("face_swap", "voice_clone"))
    voice_only = token_for(client, edit_app, "edit:voice")
    refused = ask(client, voice_only, [consent_id])
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "insufficient_scope"
    assert "edit:face" in refused.headers["WWW-Authenticate"]
    # Refused before any decision: nothing recorded, nothing used.
    assert audit_entries(app, "decision.denied") == []
    assert consent_row(app, consent_id) == ("active", 0)

    allowed = ask(client, voice_only, [consent_id], operation="voice_clone",
                  media=[{"role": "audio", "sha256": SOURCE}])
    assert allowed.status_code == 201


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"operation": "face_melt", "algorithm": FILING, "consents": [], "media": MEDIA}, 422, "validation_failed"),
    ({"operation": "face_swap", "algorithm": FILING, "consents": ["cns_a", "cns_a"], "media": MEDIA},
     422, "validation_failed"),
    ({"operation": "face_swap", "algorithm": FILING, "consents": ["cns_a"],
      "media": [{"role": "source", "sha256": "abc"}]}, 422, "validation_failed"),
    ({"operation": "face_swap", "algorithm": FILING, "consents": ["cns_a"], "media": []}, 422,
     "validation_failed"),
    ({"operation": "face_swap", "algorithm": FILING, "consents": ["cns_a"], "media": MEDIA, "extra": 1},
     422, "unknown_field"),
])
def test_malformed_requests_are_refused_and_decide_nothing(
    *, app: Flask, client: FlaskClient, token: str, algorithm: str, body: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/v1/decisions", headers=bearer(token), json=body)
    assert response.status_code == status
    assert response.get_json()["code"] == code
    assert decision_rows(app) == []


def test_without_a_token_nothing_is_decided(app: Flask, client: FlaskClient, algorithm: str) -> None:
    response = client.post("/v1/decisions", json={"operation": "face_swap", "algorithm": FILING,
                                                  "consents": [], "media": MEDIA})
    assert response.status_code == 401
    assert decision_rows(app) == []


def test_each_named_consent_counts_one_use(
    app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str
) -> None:
    # Face swap of two people: the source's and the target's consent.
    source, target = make_consent(app, edit_app.client_id), make_consent(app, edit_app.client_id, max_uses=1)
    response = ask(client, token, [source, target])
    assert response.status_code == 201
    assert response.get_json()["consents"] == [source, target]
    assert consent_row(app, source) == ("active", 1)
    assert consent_row(app, target) == ("exhausted", 1)


def test_one_unusable_consent_denies_and_gives_back_the_others_use(
    app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str
) -> None:
    usable = make_consent(app, edit_app.client_id, max_uses=5)
    withdrawn = make_consent(app, edit_app.client_id)
    end_consent(app, withdrawn, "withdrawn")
    response = ask(client, token, [usable, withdrawn])
    assert response.get_json()["code"] == "consent_withdrawn"
    assert response.get_json()["consent_id"] == withdrawn
    assert consent_row(app, usable) == ("active", 0)


def test_the_use_that_reaches_max_uses_ends_the_consent(
    app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str
) -> None:
    consent_id = make_consent(app, edit_app.client_id, max_uses=2)
    assert ask(client, token, [consent_id]).status_code == 201
    assert consent_row(app, consent_id) == ("active", 1)
    assert ask(client, token, [consent_id]).status_code == 201
    assert consent_row(app, consent_id) == ("exhausted", 2)
    [ended] = audit_entries(app, "consent.exhausted")
    assert ended["consent_id"] == consent_id
    assert ended["actor"] == {"type": "system", "id": "consent-gateway"}
    assert ended["detail"] == {"uses": 2, "max_uses": 2}
    assert ask(client, token, [consent_id]).get_json()["code"] == "consent_exhausted"


def test_an_outcome_is_recorded_once(
    app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str
) -> None:
    consent_id = make_consent(app, edit_app.client_id)
    decision_id = ask(client, token, [consent_id]).get_json()["decision_id"]
    output = hashlib.sha256(b"edited").hexdigest()
    first = client.post(f"/v1/decisions/{decision_id}/outcome", headers=bearer(token),
                        json={"outcome": "completed", "output_sha256": output})
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"decision_id": decision_id, "outcome": "completed", "output_sha256": output}
    second = client.post(f"/v1/decisions/{decision_id}/outcome", headers=bearer(token),
                         json={"outcome": "failed"})
    assert second.status_code == 409
    assert second.get_json()["code"] == "outcome_already_recorded"
    [entry] = audit_entries(app, "decision.completed")
    assert entry["decision_id"] == decision_id
    assert entry["output_sha256"] == output
    assert entry["consent_id"] == consent_id
    assert audit_entries(app, "decision.failed") == []


def test_outcomes_of_denied_or_foreign_decisions_are_refused(
    app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str
) -> None:
    denied = ask(client, token, ["cns_unknown"]).get_json()["decision_id"]
    response = client.post(f"/v1/decisions/{denied}/outcome", headers=bearer(token), json={"outcome": "failed"})
    assert (response.status_code, response.get_json()["code"]) == (409, "decision_denied")

    allowed = ask(client, token, [make_consent(app, edit_app.client_id)]).get_json()["decision_id"]
    other = make_app_client(app, name="Other App")
    response = client.post(f"/v1/decisions/{allowed}/outcome", headers=bearer(token_for(client, other)),
                           json={"outcome": "completed"})
    assert (response.status_code, response.get_json()["code"]) == (404, "decision_not_found")
    assert audit_entries(app, "decision.completed") == []


def test_repeated_denials_raise_one_risk_event_per_window(
    app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str
) -> None:
    app.config["RISK_DENIALS_THRESHOLD"] = 3
    for _ in range(5):
        assert ask(client, token, ["cns_probing"]).status_code == 403
    [risk] = audit_entries(app, "risk.repeated_denials")
    assert risk["client_id"] == edit_app.client_id
    assert risk["detail"]["denials"] == 3
    # Another app's denials are its own.
    other = make_app_client(app, name="Other App")
    assert ask(client, token_for(client, other), ["cns_probing"]).status_code == 403
    assert len(audit_entries(app, "risk.repeated_denials")) == 1


# --- fail closed -------------------------------------------------------------------------------------


def test_an_unusable_signing_key_answers_503_and_allows_nothing(
    *, app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str, database_url: str,
    tmp_path: Path,
) -> None:
    consent_id = make_consent(app, edit_app.client_id)
    # Same database, wrong master key: the stored signing key cannot be decrypted.
    wrong_key = base64.b64encode(b"x" * 32).decode()
    broken = create_app(app_config(database_url, tmp_path, MASTER_KEY=wrong_key)).test_client()
    response = ask(broken, token, [consent_id])
    assert response.status_code == 503
    assert response.get_json()["code"] == "signing_key_unavailable"
    assert consent_row(app, consent_id) == ("active", 0)
    assert decision_rows(app) == []
    assert audit_entries(app, "decision.allowed") == []


def test_an_unreachable_database_answers_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'nothing.sqlite3'}"
    response = ask(create_app(app_config(url, tmp_path)).test_client(), "any-token", ["cns_x"])
    assert response.status_code == 503
    assert response.get_json()["code"] == "database_unavailable"


def test_an_unreadable_consent_answers_503_and_allows_nothing(
    app: Flask, client: FlaskClient, edit_app: App, token: str, algorithm: str
) -> None:
    consent_id = make_consent(app, edit_app.client_id)
    with app.app_context(), db.unit_of_work() as session:
        session.execute(text("UPDATE consents SET operations = :ops WHERE id = :id"),
                        {"ops": json.dumps("face_swap"), "id": consent_id})
    response = ask(client, token, [consent_id])
    assert response.status_code == 503
    assert response.get_json()["code"] == "consent_state_unreadable"
    assert consent_row(app, consent_id) == ("active", 0)
    assert decision_rows(app) == []


def test_the_algorithm_register_is_read_on_every_decision(
    app: Flask, client: FlaskClient, edit_app: App, token: str
) -> None:
    consent_id = make_consent(app, edit_app.client_id, operations=("voice_clone",))
    register_algorithm(app, "FN-VOICE-ONLY", operations=("voice_clone",))
    media = [{"role": "audio", "sha256": SOURCE}]
    assert ask(client, token, [consent_id], operation="voice_clone", algorithm="FN-VOICE-ONLY",
               media=media).status_code == 201
    runner = app.test_cli_runner()
    assert runner.invoke(main, ["algorithms", "suspend", "FN-VOICE-ONLY"]).exit_code == 0
    response = ask(client, token, [consent_id], operation="voice_clone", algorithm="FN-VOICE-ONLY", media=media)
    assert response.get_json()["code"] == "algorithm_suspended"
