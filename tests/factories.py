"""Factories for test data, created through the same code paths the product uses."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from gateway.auth.oauth import create_client
from gateway.core.clock import utcnow
from gateway.core.db import db

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
    from gateway.auditing.trail import OPERATOR, AuditJournal

    now = utcnow()
    with app.app_context(), db.unit_of_work() as session:
        client, secret = create_client(session, name=name, scope=scope, redirect_uris=list(redirect_uris),
                                       actor=OPERATOR, journal=AuditJournal(session, now), now=now)
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
    from gateway.auditing.trail import OPERATOR, AuditJournal
    from gateway.registry.algorithms import AlgorithmSpec, register

    now = utcnow()
    with app.app_context(), db.unit_of_work() as session:
        register(session, AlgorithmSpec(filing_number=filing_number, name=name, provider="Test Provider",
                                        product="Test Product", operations=operations,
                                        upstream_url=upstream_url),
                 actor=OPERATOR, journal=AuditJournal(session, now), now=now)
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
    from gateway.keys.keyring import signer

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


# --- consent lifecycle and the subject portal -----------------------------------------------------------

DEFAULT_CONTACT = "alice@example.com"


def outbox_messages(app: Flask) -> list[dict[str, Any]]:
    """Messages the outbox notifier wrote, oldest first."""
    import json
    from pathlib import Path

    notifier = str(app.config["NOTIFIER"])
    assert notifier.startswith("outbox:"), notifier
    folder = Path(notifier.removeprefix("outbox:"))
    if not folder.exists():
        return []
    return [json.loads(path.read_text("utf-8")) for path in sorted(folder.glob("*.json"))]


def last_code(app: Flask, to: str = DEFAULT_CONTACT) -> str:
    """The newest one-time code sent to ``to``, read from the outbox like a person reads their mail."""
    import re

    for message in reversed(outbox_messages(app)):
        if message["to"] == to:
            found = re.search(r"\b(\d{6})\b", message["text"])
            assert found, message
            return found.group(1)
    raise AssertionError(f"no message to {to}")


def create_consent_request(client: FlaskClient, token: str, *, contact: str | None = DEFAULT_CONTACT,
                           reference: str | None = "user-42", headers: dict[str, str] | None = None,
                           expect: int = 201, **body: Any) -> dict[str, Any]:
    """POST /v1/consent-requests with sensible defaults; returns the JSON body."""
    payload: dict[str, Any] = {"operations": ["face_swap"], "purpose": "Put your face in a birthday video"}
    subject = {k: v for k, v in (("contact", contact), ("reference", reference)) if v is not None}
    if subject:
        payload["subject"] = subject
    payload.update(body)
    response = client.post("/v1/consent-requests", json=payload, headers={**bearer(token), **(headers or {})})
    assert response.status_code == expect, response.get_data(as_text=True)
    result: dict[str, Any] = response.get_json()
    return result


class PortalVisitor:
    """A subject clicking through the hosted consent screen with a test client (form posts, no JS)."""

    def __init__(self, app: Flask, client: FlaskClient | None = None) -> None:
        self.app = app
        self.client = client or app.test_client()

    @staticmethod
    def field(html: str, name: str) -> str:
        import re

        found = re.search(rf'name="{name}" value="([^"]*)"', html)
        assert found, f"no {name} field in page"
        return found.group(1)

    def page(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:500])
        return response.get_data(as_text=True)

    def csrf(self, path: str) -> str:
        return self.field(self.page(path), "csrf_token")

    def post(self, path: str, data: dict[str, Any], csrf_from: str) -> Any:
        return self.client.post(path, data={"csrf_token": self.csrf(csrf_from), **data})

    def send_code(self, request_id: str, contact: str | None = None) -> Any:
        data = {} if contact is None else {"contact": contact}
        return self.post(f"/consent/{request_id}/code", data, f"/consent/{request_id}")

    def verify(self, request_id: str, code: str) -> Any:
        return self.post(f"/consent/{request_id}/verify", {"code": code}, f"/consent/{request_id}")

    def prove(self, request_id: str, contact: str = DEFAULT_CONTACT, *, enter_contact: bool = False) -> None:
        response = self.send_code(request_id, contact if enter_contact else None)
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        response = self.verify(request_id, last_code(self.app, contact))
        assert response.status_code == 303, response.get_data(as_text=True)[:500]

    def decide(self, request_id: str, operations: list[str], action: str = "approve",
               notice_sha256: str | None = None, locale: str | None = None, *, selfie: bytes | None = None) -> Any:
        html = self.page(f"/consent/{request_id}")
        data: dict[str, Any] = {
            "csrf_token": self.field(html, "csrf_token"),
            "notice_sha256": notice_sha256 or self.field(html, "notice_sha256"),
            "locale": locale or self.field(html, "locale"),
            "operations": operations,
            "action": action,
        }
        if selfie is not None:
            import io

            data["selfie"] = (io.BytesIO(selfie), "selfie.jpg", "image/jpeg")
        return self.client.post(f"/consent/{request_id}/decision", data=data)

    def grant(self, request_id: str, operations: list[str], contact: str = DEFAULT_CONTACT,
              selfie: bytes | None = None) -> Any:
        self.prove(request_id, contact)
        response = self.decide(request_id, operations, selfie=selfie)
        assert response.status_code in (200, 303), response.get_data(as_text=True)[:500]
        return response

    def sign_in(self, contact: str = DEFAULT_CONTACT) -> None:
        response = self.post("/me/code", {"contact": contact}, "/me")
        assert response.status_code == 303
        response = self.post("/me/verify", {"code": last_code(self.app, contact)}, "/me")
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
