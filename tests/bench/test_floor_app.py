"""bench/floor_app.py is the yardstick that bounds what a decision can cost, so it must do a decision's work.

If the floor skipped a check or a write, the bound it gives (docs/PERFORMANCE.md, "The floor") would be
too low to mean anything. On the gateway's own database, served either way (Flask view, no framework), it
must refuse what the gateway refuses (a revoked token, a withdrawn consent, a suspended algorithm) and,
on an allow, take exactly one use, write one decision row and one audit queue row, and answer a ticket
its key verifies.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterator
from types import ModuleType

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import Client

from audit.models import QueuedEntry
from gateway.auth.models import OAuthToken
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


@pytest.fixture
def floor(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("FLOOR_DATABASE_URL", app.config["DATABASE_URL"])
    module = importlib.reload(importlib.import_module("bench.floor_app"))  # it reads the URL as it loads
    yield module
    connection = getattr(module._local, "connection", None)
    if connection is not None:
        connection.close()


def _counts(app: Flask) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(DecisionRow)) or 0,
                db.session.scalar(select(func.count()).select_from(QueuedEntry)) or 0)


def _client(floor: ModuleType, front: str) -> Client:
    """The Flask view, or the same decision served with no framework."""
    return floor.app.test_client() if front == "app" else Client(floor.wsgi)


def _decide(floor: ModuleType, front: str, token: str, consent_id: str) -> int:
    body = {"operation": "face_swap", "algorithm": FILING, "consents": [consent_id], "media": MEDIA}
    return _client(floor, front).post("/v1/decisions", json=body, headers=bearer(token)).status_code


FRONTS = pytest.mark.parametrize("front", ["app", "wsgi"])


@FRONTS
def test_an_allow_takes_one_use_and_writes_the_decision_and_its_entry(
        app: Flask, client: FlaskClient, floor: ModuleType, front: str) -> None:
    edit_app = make_app_client(app, scope="edit:face")
    register_algorithm(app, FILING, operations=("face_swap",))
    consent_id = make_consent(app, edit_app.client_id)
    token = token_for(client, edit_app)
    decisions, queued = _counts(app)
    body = {"operation": "face_swap", "algorithm": FILING, "consents": [consent_id], "media": MEDIA}

    response = _client(floor, front).post("/v1/decisions", json=body, headers=bearer(token))

    assert response.status_code == 201
    assert consent_row(app, consent_id) == ("active", 1)
    assert _counts(app) == (decisions + 1, queued + 1)
    public = floor.KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    answer = json.loads(response.get_data())
    claims = jwt.decode(answer["ticket"], public, algorithms=["EdDSA"])
    assert claims["jti"] == answer["decision_id"]
    assert claims["consents"] == [consent_id]


@FRONTS
def test_it_refuses_what_the_gateway_refuses_and_writes_nothing(
        app: Flask, client: FlaskClient, floor: ModuleType, front: str) -> None:
    edit_app = make_app_client(app, scope="edit:face")
    register_algorithm(app, FILING, operations=("face_swap",))
    withdrawn, limited, fine = (make_consent(app, edit_app.client_id),
                                make_consent(app, edit_app.client_id, max_uses=1),
                                make_consent(app, edit_app.client_id))
    token = token_for(client, edit_app)
    assert _decide(floor, front, token, limited) == 201
    end_consent(app, withdrawn, "withdrawn")
    before = _counts(app)

    assert _decide(floor, front, token, withdrawn) == 403
    assert _decide(floor, front, token, limited) == 403  # its one use is taken
    assert _decide(floor, front, token, "cns_unknown") == 403
    with app.app_context():
        db.session.execute(update(Algorithm).where(Algorithm.filing_number == FILING).values(status="suspended"))
        db.session.commit()
    assert _decide(floor, front, token, fine) == 403
    with app.app_context():
        db.session.execute(update(Algorithm).values(status="active"))
        db.session.execute(update(OAuthToken).values(revoked=True))
        db.session.commit()
    assert _decide(floor, front, token, fine) == 401

    assert _counts(app) == before
    assert consent_row(app, fine) == ("active", 0)
