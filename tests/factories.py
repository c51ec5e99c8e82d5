"""Factories for test data, created through the same code paths the product uses."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from gateway.clock import utcnow
from gateway.db import db
from gateway.oauth import create_client

ALL_SCOPES = "consent:read consent:write edit:face edit:voice audit:read audit:export admin"


@dataclass(frozen=True)
class App:
    client_id: str
    secret: str

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def make_app_client(app: Flask, scope: str = ALL_SCOPES, name: str = "Test App",
                    redirect_uris: tuple[str, ...] = ()) -> App:
    with app.app_context(), db.unit_of_work() as session:
        client, secret = create_client(session, name=name, scope=scope, redirect_uris=list(redirect_uris),
                                       now=utcnow())
        return App(client.client_id, secret)


def token_for(client: FlaskClient, app_client: App, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    response = client.post("/oauth/token", data=data, headers=app_client.basic())
    assert response.status_code == 200, response.get_data(as_text=True)
    token: str = response.get_json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- enforcement: algorithms and consents ------------------------------------------------------------

DEMO_NOTICE_SHA256 = "0" * 64


def register_algorithm(app: Flask, filing_number: str = "FN-TEST-0001",
                       operations: tuple[str, ...] = ("face_swap", "face_attribute_edit", "voice_clone"),
                       upstream_url: str = "http://127.0.0.1:9/edit", name: str = "Test Algorithm") -> str:
    from gateway.audit_trail import OPERATOR
    from gateway.registry import AlgorithmSpec, register

    with app.app_context(), db.unit_of_work() as session:
        register(session, AlgorithmSpec(filing_number=filing_number, name=name, provider="Test Provider",
                                        product="Test Product", operations=operations,
                                        upstream_url=upstream_url), OPERATOR, utcnow())
    return filing_number


def make_consent(app: Flask, client_id: str, *, operations: tuple[str, ...] = ("face_swap",),
                 algorithms: tuple[str, ...] | None = None, max_uses: int | None = None,
                 not_before: datetime | None = None, expires_at: datetime | None = None,
                 subject_id: str | None = None) -> str:
    """An active consent with a record signed by the gateway's key, inserted directly.

    Stands in for the grant flow on the portal (which needs a subject clicking through); the row and
    the record have exactly the shape the grant writes.
    """
    from consent import jws
    from consent.models import Consent
    from consent.operations import OPERATIONS
    from consent.records import CONSENT_TYP, Collection, ConsentRecordSpec, Notice, consent_claims, new_id
    from gateway.keyring import signer

    now = utcnow()
    start = not_before or now - timedelta(minutes=1)
    end = expires_at or now + timedelta(days=30)
    consent_id, subject = new_id("cns"), subject_id or new_id("sub")
    ordered = tuple(name for name in OPERATIONS if name in operations)
    with app.app_context(), db.unit_of_work() as session:
        key = signer(session)
        claims = consent_claims(ConsentRecordSpec(
            consent_id=consent_id, request_id=new_id("creq"), subject_id=subject, client_id=client_id,
            issued_at=start, not_before=start, expires_at=end, operations=ordered, purpose="testing",
            algorithms=algorithms, max_uses=max_uses,
            notice=Notice(version="test-1", sha256=DEMO_NOTICE_SHA256, locale="en"),
            collection=Collection(method="test", authn="test", at=start),
            jurisdiction="CN", legal_basis="test",
        ), issuer=key.issuer)
        session.add(Consent(
            id=consent_id, request_id=claims["request"], client_id=client_id, subject_id=subject,
            status="active", operations=list(claims["consent"]["operations"]),
            modalities=list(claims["consent"]["modalities"]), algorithms=claims["consent"]["algorithms"],
            purpose="testing", max_uses=max_uses, uses=0, not_before=start, expires_at=end,
            record=jws.sign(claims, key, CONSENT_TYP), revocation=None, supersedes=None, created_at=start,
        ))
    return consent_id


def end_consent(app: Flask, consent_id: str, status: str) -> None:
    """Move an active consent to ``status`` the way the lifecycle does (conditional on active)."""
    from sqlalchemy import update

    from consent.models import Consent

    with app.app_context(), db.unit_of_work() as session:
        session.execute(update(Consent).where(Consent.id == consent_id, Consent.status == "active")
                        .values(status=status, ended_at=utcnow()))


def consent_row(app: Flask, consent_id: str) -> tuple[str, int]:
    """(status, uses) as stored."""
    from consent.models import Consent

    with app.app_context(), db.unit_of_work() as session:
        row = session.get(Consent, consent_id)
        assert row is not None
        return row.status, row.uses


def audit_entries(app: Flask, action: str | None = None) -> list[dict[str, Any]]:
    """Audit entries as written (queued or already sequenced), oldest first."""
    import json

    from sqlalchemy import inspect, text

    with app.app_context(), db.unit_of_work() as session:
        tables = set(inspect(session.connection()).get_table_names())
        bodies = [row[0] for row in session.execute(text("SELECT body FROM audit_queue ORDER BY id"))]
        if "audit_entries" in tables:
            bodies += [row[0] for row in session.execute(text("SELECT body FROM audit_entries"))]
    entries = [json.loads(bytes(body)) for body in bodies]
    entries.sort(key=lambda e: e["ts"])
    return [e for e in entries if action is None or e["action"] == action]
