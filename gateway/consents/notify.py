"""Delivering one-time codes, through the notifier that ``CONSENT_GATEWAY_NOTIFIER`` names.

- ``console``: print to stderr (development; the demo prints codes to its terminal).
- ``outbox:DIR``: one JSON file per message in DIR (the demo and the tests read codes from it).
- ``smtp://[user:password@]host[:port][?from=addr&starttls=1]`` or ``smtps://…``: real email.
- ``webhook:URL``: a POST signed per the Standard Webhooks spec (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64 HMAC-SHA256>``) with ``CONSENT_GATEWAY_WEBHOOK_SECRET``, for apps that
  send SMS themselves.

Sending happens inside the request, before the commit: if delivery fails the code is rolled back
with it, and the subject is told to try again rather than wait for a code that never comes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import secrets
import smtplib
import ssl
import sys
import time
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
from flask import current_app

from gateway.core.errors import GatewayError

_EXT = "consent_gateway.notifier"
_OUTBOX_SEQUENCE = itertools.count()
_TIMEOUT_SECONDS = 10


class NotificationFailed(GatewayError):
    """The message could not be handed over for delivery."""


@dataclass(frozen=True)
class Message:
    to: str  # normalised email address or E.164 number
    channel: str  # email | phone
    subject: str
    text: str
    locale: str
    code: str | None = None  # for webhook receivers that format their own SMS


class Notifier(Protocol):
    def send(self, message: Message) -> None: ...


class ConsoleNotifier:
    def send(self, message: Message) -> None:
        print(f"[consent-gateway] to {message.to}: {message.text}", file=sys.stderr, flush=True)


class OutboxNotifier:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: Message) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Sortable by when it was written: wall clock first, then this process's own sequence (which
        # keeps order when the clock does not move, as under a frozen test clock).
        name = f"{time.time_ns():020d}-{next(_OUTBOX_SEQUENCE):09d}-{secrets.token_hex(4)}.json"
        temporary = self.directory / f".{name}.tmp"
        payload = {**asdict(message), "sent_at": time.time()}
        try:
            temporary.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
            # Rename is atomic: a reader polling the folder never sees half a message.
            os.replace(temporary, self.directory / name)
        except OSError as exc:
            raise NotificationFailed(f"cannot write to the outbox {self.directory}: {exc}") from exc


class SmtpNotifier:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"SMTP notifier needs a host: {url}")
        options = parse_qs(parts.query)
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = options.get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
        self.sender = options.get("from", ["consent-gateway@localhost"])[0]

    def send(self, message: Message) -> None:
        if message.channel != "email":
            raise NotificationFailed("the SMTP notifier reaches email addresses only")
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        email["Content-Language"] = message.locale
        email.set_content(message.text)
        try:
            if self.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=_TIMEOUT_SECONDS,
                                                        context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=_TIMEOUT_SECONDS)
            with client:
                if self.starttls:
                    client.starttls(context=ssl.create_default_context())
                if self.username and self.password:
                    client.login(self.username, self.password)
                client.send_message(email)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotificationFailed(f"SMTP delivery to {self.host}:{self.port} failed: {exc}") from exc


class WebhookNotifier:
    def __init__(self, url: str, secret: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook notifier needs an http(s) URL: {url}")
        if not secret:
            raise ValueError("the webhook notifier needs CONSENT_GATEWAY_WEBHOOK_SECRET to sign its messages")
        self.url = url
        self.key = webhook_key(secret)

    def send(self, message: Message) -> None:
        body = json.dumps({"type": "one_time_code", **asdict(message)}, ensure_ascii=False).encode()
        message_id = "msg_" + secrets.token_urlsafe(16)
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + webhook_signature(self.key, message_id, timestamp, body),
        }
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            raise NotificationFailed(f"webhook {self.url} unreachable: {exc}") from exc
        if not response.is_success:
            raise NotificationFailed(f"webhook {self.url} answered {response.status_code}")


def webhook_key(secret: str) -> bytes:
    """Standard Webhooks secrets are ``whsec_`` + base64; any other string is used as raw bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def webhook_signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def build(spec: str, webhook_secret: str = "") -> Notifier:
    if spec == "console":
        return ConsoleNotifier()
    if spec.startswith("outbox:") and len(spec) > len("outbox:"):
        return OutboxNotifier(Path(spec.removeprefix("outbox:")))
    if spec.startswith(("smtp://", "smtps://")):
        return SmtpNotifier(spec)
    if spec.startswith("webhook:"):
        return WebhookNotifier(spec.removeprefix("webhook:"), webhook_secret)
    raise ValueError(f"CONSENT_GATEWAY_NOTIFIER {spec!r}: use console, outbox:DIR, smtp://…, smtps://… or webhook:URL")


def notifier() -> Notifier:
    found = current_app.extensions.get(_EXT)
    if found is None:
        found = build(str(current_app.config["NOTIFIER"]), str(current_app.config.get("WEBHOOK_SECRET", "")))
        current_app.extensions[_EXT] = found
    result: Notifier = found
    return result
