"""Code delivery through every notifier: a real SMTP server (aiosmtpd), a real webhook receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from consent.models import OneTimeCode
from gateway import create_app
from gateway.consents.notify import ConsoleNotifier, Message, NotificationFailed, OutboxNotifier, build
from gateway.core.db import db
from tests.conftest import app_config, init_keys
from tests.factories import (
    PortalVisitor,
    audit_entries,
    bearer,
    create_consent_request,
    make_app_client,
    outbox_messages,
    token_for,
)

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Mailbox]]:
    mailbox = _Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


def _app(database_url: str, tmp_path: Path, **config: Any) -> Flask:
    application = create_app(app_config(database_url, tmp_path, **config))
    application.instance_path = str(tmp_path / "instance")
    init_keys(application)
    return application


def _ask(application: Flask, client: FlaskClient, contact: str) -> str:
    registered = make_app_client(application)
    request_id: str = create_consent_request(client, token_for(client, registered), contact=contact)["id"]
    return request_id


def test_codes_go_out_by_smtp_and_work(database_url: str, tmp_path: Path,
                                       smtp_server: tuple[int, _Mailbox]) -> None:
    port, mailbox = smtp_server
    application = _app(database_url, tmp_path, NOTIFIER=f"smtp://127.0.0.1:{port}?from=consent@gateway.test")
    client = application.test_client()
    request_id = _ask(application, client, "Carol@Example.com")
    visitor = PortalVisitor(application)
    assert visitor.send_code(request_id).status_code == 303
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["To"] == "carol@example.com"
    assert mail["From"] == "consent@gateway.test"
    assert mail["Subject"] == "Your Consent Gateway code"
    text = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    code = next(word.rstrip(".") for word in text.split() if word.rstrip(".").isdigit())
    assert visitor.verify(request_id, code).status_code == 303
    with application.app_context():
        db.engine.dispose()


def test_a_failed_delivery_sends_nothing_and_stores_nothing(database_url: str, tmp_path: Path) -> None:
    application = _app(database_url, tmp_path, NOTIFIER=f"smtp://127.0.0.1:{_free_port()}")
    client = application.test_client()
    request_id = _ask(application, client, "dave@example.com")
    response = PortalVisitor(application).send_code(request_id)
    assert response.status_code == 503
    assert "could not send the code" in response.get_data(as_text=True)
    with application.app_context():
        assert db.session.scalar(select(func.count()).select_from(OneTimeCode)) == 0
    assert audit_entries(application, "code.sent") == []
    with application.app_context():
        db.engine.dispose()


def test_smtp_cannot_reach_a_phone(database_url: str, tmp_path: Path, smtp_server: tuple[int, _Mailbox]) -> None:
    port, mailbox = smtp_server
    application = _app(database_url, tmp_path, NOTIFIER=f"smtp://127.0.0.1:{port}")
    request_id = _ask(application, application.test_client(), "+8613800138000")
    assert PortalVisitor(application).send_code(request_id).status_code == 503
    assert mailbox.messages == []
    with application.app_context():
        db.engine.dispose()


class _Receiver:
    """An app's SMS backend: records signed webhook calls and answers with a chosen status."""

    def __init__(self, status: int = 204) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.status = status

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.calls.append((dict(request.headers), request.get_data()))
        return Response(status=self.status)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[tuple[str, _Receiver]]:
    app = _Receiver()
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/sms", app
    server.shutdown()
    server.server_close()


def _standard_webhooks_valid(headers: dict[str, str], body: bytes) -> bool:
    """Verification as the Standard Webhooks spec describes it, written independently of the sender."""
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = f"{headers['Webhook-Id']}.{headers['Webhook-Timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, sig.removeprefix("v1,"))
               for sig in headers["Webhook-Signature"].split())


def test_webhook_posts_are_signed(database_url: str, tmp_path: Path, receiver: tuple[str, _Receiver]) -> None:
    url, sms = receiver
    application = _app(database_url, tmp_path, NOTIFIER=f"webhook:{url}", WEBHOOK_SECRET=WEBHOOK_SECRET)
    request_id = _ask(application, application.test_client(), "+8613800138000")
    visitor = PortalVisitor(application)
    assert visitor.send_code(request_id).status_code == 303
    headers, body = sms.calls[0]
    assert _standard_webhooks_valid(headers, body)
    assert not _standard_webhooks_valid(headers, body.replace(b"+86", b"+44"))
    payload = json.loads(body)
    assert payload["type"] == "one_time_code"
    assert payload["to"] == "+8613800138000"
    assert payload["channel"] == "phone"
    assert visitor.verify(request_id, payload["code"]).status_code == 303
    sms.status = 500
    with pytest.raises(NotificationFailed):
        build(f"webhook:{url}", WEBHOOK_SECRET).send(Message("+8613800138000", "phone", "s", "t", "en", "123456"))
    with application.app_context():
        db.engine.dispose()


def test_webhook_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        build("webhook:https://sms.example/hook")


def test_an_unknown_notifier_stops_the_start(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CONSENT_GATEWAY_NOTIFIER"):
        create_app(app_config(database_url, tmp_path, NOTIFIER="carrier-pigeon"))


def test_console_and_outbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = Message("eve@example.com", "email", "Your code", "Your code is 654321.", "en", "654321")
    ConsoleNotifier().send(message)
    assert "eve@example.com: Your code is 654321." in capsys.readouterr().err
    outbox = OutboxNotifier(tmp_path / "box")
    outbox.send(message)
    outbox.send(message)
    files = sorted((tmp_path / "box").iterdir())
    assert len(files) == 2
    assert all(not f.name.startswith(".") for f in files)
    assert json.loads(files[0].read_text("utf-8"))["code"] == "654321"


def test_a_request_with_contact_sends_nothing_until_the_subject_asks(app: Flask, client: FlaskClient) -> None:
    token = token_for(client, make_app_client(app))
    create_consent_request(client, token)
    assert client.get("/v1/consents", headers=bearer(token)).status_code == 200
    # The app's request alone never mails the person: only their own click on the screen does.
    assert outbox_messages(app) == []
