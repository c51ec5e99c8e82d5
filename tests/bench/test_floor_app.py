"""bench/floor_app.py is the yardstick that bounds what a decision can cost, so it must do a decision's work.

If the floor skipped a check or a write, the bound it gives (docs/PERFORMANCE.md, "The floor") would be
too low to mean anything. On the gateway's own database, served either way (Flask view, no framework), it
must refuse every decision the gateway's policy denies, with nothing written; on an allow take exactly one
use and write one decision row and one audit queue row under a ticket its key verifies; refuse the use
when a withdrawal wins the row between its read and its write; and write nothing when any write fails.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, update
from werkzeug.test import Client

from audit.models import QueuedEntry
from consent.models import Consent
from gateway.auth.models import OAuthClient, OAuthToken
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.decisions.models import DecisionRow
from gateway.registry.models import Algorithm
from tests.factories import (
    bearer,
    consent_row,
    end_consent,
    make_app_client,
    make_consent,
    register_algorithm,
    token_for,
)

FILING = "FN-FLOOR-0001"
MEDIA = [{"role": "source", "sha256": hashlib.sha256(b"portrait").hexdigest()}]
FRONTS = pytest.mark.parametrize("front", ["app", "wsgi"])


@pytest.fixture
def floor(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("FLOOR_DATABASE_URL", app.config["DATABASE_URL"])
    module = importlib.reload(importlib.import_module("bench.floor_app"))  # it reads the URL as it loads
    yield module
    module.close()


class Setting:
    """An app with a token and one face_swap consent on a registered algorithm."""

    def __init__(self, app: Flask, client: FlaskClient, floor: ModuleType, front: str, **consent: Any) -> None:
        self.app, self.floor, self.front = app, floor, front
        self.edit_app = make_app_client(app, scope="edit:face")
        register_algorithm(app, FILING, operations=("face_swap",))
        self.consent_id = make_consent(app, self.edit_app.client_id, **consent)
        self.token = token_for(client, self.edit_app)

    def decide(self, consent_ids: list[str] | None = None, token: str | None = None, **body: Any) -> Any:
        payload = {"operation": "face_swap", "algorithm": FILING, "consents": consent_ids or [self.consent_id],
                   "media": MEDIA, **body}
        served = self.floor.app.test_client() if self.front == "app" else Client(self.floor.wsgi)
        return served.post("/v1/decisions", json=payload, headers=bearer(token or self.token))

    def change(self, statement: Any) -> None:
        with self.app.app_context():
            db.session.execute(statement)
            db.session.commit()

    def written(self) -> tuple[int, int, int]:
        """Decision rows, audit queue rows, uses of the consent."""
        with self.app.app_context():
            return (db.session.scalar(select(func.count()).select_from(DecisionRow)) or 0,
                    db.session.scalar(select(func.count()).select_from(QueuedEntry)) or 0,
                    db.session.scalar(select(Consent.uses).where(Consent.id == self.consent_id)) or 0)


@FRONTS
def test_an_allow_takes_one_use_and_writes_the_decision_and_its_entry(
        app: Flask, client: FlaskClient, floor: ModuleType, front: str) -> None:
    setting = Setting(app, client, floor, front)
    decisions, queued, _ = setting.written()

    response = setting.decide()

    assert response.status_code == 201
    assert setting.written() == (decisions + 1, queued + 1, 1)
    answer = json.loads(response.get_data())
    public = floor.KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    claims = jwt.decode(answer["ticket"], public, algorithms=["EdDSA"], audience=FILING)
    assert (claims["jti"], claims["consents"], claims["client_id"]) == (
        answer["decision_id"], [setting.consent_id], setting.edit_app.client_id)
    with app.app_context():
        row = db.session.get(DecisionRow, answer["decision_id"])
        assert row is not None
        assert (row.allowed, row.consents) == (True, [setting.consent_id])
        assert row.ticket_expires_at is not None
        assert row.ticket_expires_at.timestamp() == claims["exp"]
        body = json.loads(db.session.scalars(select(QueuedEntry.body).order_by(QueuedEntry.id.desc())).first() or b"")
    assert (body["action"], body["decision_id"], body["consent_id"]) == (
        "decision.allowed", answer["decision_id"], setting.consent_id)


def _other_apps_consent(setting: Setting) -> dict[str, Any]:
    other = make_app_client(setting.app, scope="edit:face", name="Other App")
    return {"consent_ids": [make_consent(setting.app, other.client_id)]}


# Each makes the decision one the gateway denies (or refuses to authenticate), then says how to ask.
DENIED: dict[str, Callable[[Setting], dict[str, Any]]] = {
    "token revoked": lambda s: s.change(update(OAuthToken).values(revoked=True)) or {},
    "token expired": lambda s: s.change(update(OAuthToken).values(issued_at=OAuthToken.issued_at - 86400)) or {},
    "token of an app that is gone": lambda s: s.change(
        delete(OAuthClient).where(OAuthClient.client_id == s.edit_app.client_id)) or {},
    "token without edit:face": lambda s: {"token": token_for(
        s.app.test_client(), make_app_client(s.app, scope="edit:voice", name="Voice App"))},
    "another app's consent": _other_apps_consent,
    "unknown consent": lambda s: {"consent_ids": ["cns_unknown"]},
    "consent withdrawn": lambda s: end_consent(s.app, s.consent_id, "withdrawn") or {},
    "consent not yet valid": lambda s: s.change(update(Consent).values(not_before=utcnow() + timedelta(hours=1)))
    or {},
    "consent expired": lambda s: s.change(update(Consent).values(expires_at=utcnow() - timedelta(seconds=1))) or {},
    "operation not consented": lambda s: {"operation": "face_reenactment"},
    "algorithm not consented": lambda s: s.change(update(Consent).values(algorithms=["FN-OTHER-0001"])) or {},
    "algorithm suspended": lambda s: s.change(update(Algorithm).values(status="suspended")) or {},
    "algorithm not registered": lambda s: {"algorithm": "FN-NONE-0001"},
    "consent bound to a face": lambda s: s.change(update(Consent).values(bindings={"face": "tpl_x"})) or {},
    "two consents": lambda s: {"consent_ids": [s.consent_id, s.consent_id]},
}


@FRONTS
@pytest.mark.parametrize("case", DENIED)
def test_it_refuses_what_the_gateway_refuses_and_writes_nothing(
        app: Flask, client: FlaskClient, floor: ModuleType, front: str, case: str) -> None:
    setting = Setting(app, client, floor, front)
    ask = DENIED[case](setting)
    before = setting.written()

    assert setting.decide(**ask).status_code in (400, 401, 403)
    assert setting.written() == before


@FRONTS
def test_the_last_use_is_taken_once(app: Flask, client: FlaskClient, floor: ModuleType, front: str) -> None:
    setting = Setting(app, client, floor, front, max_uses=1)

    assert setting.decide().status_code == 201
    assert setting.decide().status_code == 403
    assert consent_row(app, setting.consent_id) == ("exhausted", 1)


class _WithdrawingKey:
    """Signs like the floor's key, but first withdraws the consent: the withdrawal wins the row."""

    def __init__(self, key: Any, withdraw: Callable[[], None]) -> None:
        self.key, self.withdraw = key, withdraw

    def sign(self, data: bytes) -> bytes:
        self.withdraw()
        return bytes(self.key.sign(data))


@FRONTS
def test_a_withdrawal_between_the_read_and_the_write_wins(
        app: Flask, client: FlaskClient, floor: ModuleType, front: str, monkeypatch: pytest.MonkeyPatch) -> None:
    setting = Setting(app, client, floor, front)
    monkeypatch.setattr(floor, "KEY", _WithdrawingKey(floor.KEY, lambda: end_consent(app, setting.consent_id,
                                                                                       "withdrawn")))
    before = setting.written()

    assert setting.decide().status_code == 409
    assert setting.written() == before
    assert consent_row(app, setting.consent_id) == ("withdrawn", 0)


@FRONTS
def test_a_failed_write_leaves_nothing(
        app: Flask, client: FlaskClient, floor: ModuleType, front: str, monkeypatch: pytest.MonkeyPatch) -> None:
    setting = Setting(app, client, floor, front)
    # The audit entry's insert fails (a column that does not exist): the use and the decision go with it.
    monkeypatch.setattr(floor, "POSTGRES_WRITE", floor.POSTGRES_WRITE.replace("(ts, body)", "(ts, nowhere)"))
    monkeypatch.setattr(floor, "SQLITE_WRITES", (*floor.SQLITE_WRITES[:2], "INSERT INTO audit_queue (ts, nowhere) "
                                                 "VALUES (?, ?)"))
    before = setting.written()

    assert setting.decide().status_code == 503
    assert setting.written() == before
    monkeypatch.undo()
    assert setting.decide().status_code == 201  # the next request has a working connection again
