"""Configuration layers: defaults here, then ``CONSENT_GATEWAY_*`` environment, then the test mapping."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from audit.retention import DEFAULT_RETENTION_DAYS
from consent.operations import Modality
from consent.records import TICKET_MAX_LIFETIME
from gateway.core.errors import GatewayError

PREFIX = "CONSENT_GATEWAY"


class Defaults:
    # Where records and checkpoints say they come from; apps and auditors pin it.
    ISSUER = "http://127.0.0.1:8000"
    # Empty means "a SQLite file in the instance folder" (resolved in create_app).
    DATABASE_URL = ""
    # base64 of 32 bytes; empty means development fallback file in the instance folder.
    MASTER_KEY = ""
    # Optional: Redis for shared rate limits. The database is the fallback so that a
    # single-process SQLite deployment needs nothing else.
    REDIS_URL = ""
    ACCESS_TOKEN_TTL = 3600
    # One-time codes: sends per contact and per address an hour, checks per address per 10 minutes.
    OTP_SEND_PER_CONTACT = 5
    OTP_SEND_PER_IP = 20
    OTP_VERIFY_PER_IP = 30
    # Per client address and minute, counted across all processes (gateway/auth/ratelimit.py).
    TOKEN_RATE_LIMIT_PER_MINUTE = 300
    # JSON bodies are small; uploads to /v1/edits get their own, larger limit.
    MAX_CONTENT_LENGTH = 1024 * 1024
    MAX_UPLOAD_MB = 200
    NOTIFIER = "console"
    AUDIT_CHECKPOINT_EVERY = 1000
    AUDIT_CHECKPOINT_SECONDS = 60
    AUDIT_RETENTION_DAYS = DEFAULT_RETENTION_DAYS
    REQUEST_TTL_HOURS = 24
    UPSTREAM_TIMEOUT_SECONDS = 60
    # Decision tickets live this long (DESIGN.md caps them at 120 s).
    TICKET_TTL_SECONDS = 60
    # A client denied this often within the window gets a `risk.repeated_denials` audit entry.
    RISK_DENIALS_THRESHOLD = 10
    RISK_DENIALS_WINDOW_SECONDS = 300
    # Slow clients (gateway/core/server.py): seconds to send the request line and headers; seconds plus
    # the declared length at this many bytes a second to send the body. Cut off beyond that.
    HEADER_TIMEOUT_SECONDS = 10
    BODY_TIMEOUT_SECONDS = 30
    BODY_MIN_BYTES_PER_SECOND = 64 * 1024
    # Where proxied uploads are spooled while hashed (empty: the system temp dir). Never kept.
    UPLOAD_DIR = ""
    # Output labels (docs/LABELS.md). ContentProducer of every AIGC label: the operator's name or code
    # (empty: the ISSUER).
    LABEL_PRODUCER = ""
    # An output the gateway cannot label (format, or the [labels] extra missing): "refuse" answers 502
    # label_unsupported / label_unavailable; "pass" sends it unlabelled with an output.unlabelled audit entry.
    LABEL_UNSUPPORTED = "refuse"
    # The visible mark on images: top-left, top-right, bottom-left or bottom-right.
    LABEL_MARK_CORNER = "bottom-right"
    # A font file with CJK glyphs for "AI生成" (empty: Debian's WenQuanYi Zen Hei or Noto Sans CJK if installed).
    LABEL_MARK_FONT = ""
    # The audible cue before edited audio (WAV; MP3 and non-PCM WAV are re-encoded for it), in seconds (0.1 to 5).
    LABEL_AUDIO_CUE_SECONDS = 0.3
    # The visible mark on the first seconds of edited MP4 video (0: none; else at least 2). Costs a full
    # re-encode of the video stream (a 10 s 720p clip: ~7 s on two cores), so it is off unless configured.
    LABEL_VIDEO_MARK_SECONDS = 0.0
    # Client ids whose outputs carry the implicit label without the explicit mark, where the law allows
    # it (the app's user asked for it and the user agreement says so); each output is audited.
    LABEL_UNMARKED_CLIENTS: tuple[str, ...] = ()
    # Images larger than this (pixels) are not decoded for the mark, and so refused (label_failed).
    LABEL_MAX_IMAGE_PIXELS = 50_000_000
    # Outputs are spooled (under UPLOAD_DIR) to be labelled; larger ones are refused (label_failed).
    LABEL_MAX_OUTPUT_MB = 1024
    # C2PA content credentials beside the AIGC label (the [c2pa] extra; docs/LABELS.md): PEM files of the
    # signing certificate chain (end-entity first) and its Ed25519 key, made by `consent-gateway labels ca
    # create`. Empty: no C2PA manifest. Set without the extra: logged, outputs carry the AIGC label only.
    LABEL_C2PA_CERT_CHAIN = ""
    LABEL_C2PA_KEY = ""
    # Biometric binding (docs/BINDING.md). Modalities whose consents are granted only with the subject's
    # template, and whose media are then checked at every edit: "face" (the [face] extra); "voice" has no
    # model yet, so listing it refuses voice consents' binding with 503 binding_unavailable. [] turns
    # binding off (consents are granted without templates and tickets say "binding": "not_checked").
    BINDING_MODALITIES: tuple[str, ...] = ("face",)
    # Largest distance between a face and a template that still counts as the same person (dlib's
    # ResNet embeddings; see docs/PERFORMANCE.md "Biometric binding" for the measurements behind it).
    BINDING_FACE_THRESHOLD = 0.5
    # Frames of a video part are sampled this often, up to this many, and each face in them checked.
    BINDING_VIDEO_EVERY_SECONDS = 0.5
    BINDING_VIDEO_MAX_FRAMES = 120
    # Active liveness (docs/BINDING.md), off by default: the selfie is a short video in which the person turns
    # their head as a random challenge on the page asks. Its yaw threshold is not yet calibrated on recorded
    # head turns (the test photos turn about 20 degrees), and it costs ~0.15 s of CPU a sampled frame.
    BINDING_FACE_LIVENESS = False
    BINDING_LIVENESS_YAW = 0.15
    BINDING_LIVENESS_MAX_SECONDS = 8.0
    # HMAC key for the webhook notifier's signature header.
    WEBHOOK_SECRET = ""
    # The audit ticker (sequencing leftovers, month close, time-based checkpoints); `serve` turns it on.
    # Witnesses that cosign checkpoints (C2SP tlog-witness): a JSON list of {"url", "vkey"} (gateway/auditing/
    # witnesses.py); submitted every AUDIT_WITNESS_SECONDS, each call given up after AUDIT_WITNESS_TIMEOUT.
    AUDIT_WITNESSES: list[object] = []
    AUDIT_WITNESS_SECONDS = 5.0
    AUDIT_WITNESS_TIMEOUT = 5.0
    AUDIT_BACKGROUND = False
    AUDIT_TICK_SECONDS = 1.0
    LOG_LEVEL = "INFO"
    # Production refuses to start on development fallbacks (a master key file made up on the spot).
    PRODUCTION = False
    # Empty: derived from the master key, so every worker and every process signs portal sessions alike.
    SECRET_KEY = ""
    # Not Flask's "session": a demo app on the same host (cookies ignore the port) must not overwrite it.
    SESSION_COOKIE_NAME = "consent_gateway_session"
    # None: secure exactly when the issuer is https (local demos run on plain http loopback).
    SESSION_COOKIE_SECURE: bool | None = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"


class ConfigError(GatewayError, ValueError):
    """The configuration cannot run safely; the gateway refuses to start."""

    code = "configuration_invalid"


def load(app: Flask, test_config: dict[str, Any] | None) -> None:
    app.config.from_object(Defaults)
    # from_prefixed_env parses values as JSON where it can, so integers stay integers.
    app.config.from_prefixed_env(PREFIX)
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["SESSION_COOKIE_SECURE"] is None:
        app.config["SESSION_COOKIE_SECURE"] = str(app.config["ISSUER"]).startswith("https://")
    if app.config["SESSION_COOKIE_SECURE"] and not app.config["SESSION_COOKIE_NAME"].startswith("__Host-"):
        # __Host-: only ever set over https, for this host alone and the whole path (RFC 6265bis 4.1.3.2).
        app.config["SESSION_COOKIE_NAME"] = "__Host-" + app.config["SESSION_COOKIE_NAME"]
    if app.config["PRODUCTION"] and not app.config["MASTER_KEY"]:
        raise ConfigError("production (CONSENT_GATEWAY_PRODUCTION) needs CONSENT_GATEWAY_MASTER_KEY; "
                          "the development key file is for development only")
    if not app.config["DATABASE_URL"]:
        os.makedirs(app.instance_path, exist_ok=True)
        path = os.path.join(app.instance_path, "consent-gateway.sqlite3")
        app.config["DATABASE_URL"] = f"sqlite:///{path}"
    _check_database_url(str(app.config["DATABASE_URL"]))
    _check_values(app.config)


# Settings whose value must be at least 1 (0 would turn a limit or a lifetime into a refusal of everything).
_POSITIVE = frozenset({"ACCESS_TOKEN_TTL", "TICKET_TTL_SECONDS", "MAX_CONTENT_LENGTH", "MAX_UPLOAD_MB",
                       "AUDIT_CHECKPOINT_EVERY", "REQUEST_TTL_HOURS", "AUDIT_RETENTION_DAYS"})
_MODALITIES = frozenset(modality.value for modality in Modality)


def _check_values(config: Mapping[str, Any]) -> None:
    """Every setting has the type of its default, so a typo stops the start instead of changing behaviour.

    Environment values are read as JSON where they parse, so ``BINDING_MODALITIES=face`` arrives as the
    string "face", which as a set of modalities would be {"f", "a", "c", "e"}: face binding silently off.
    """
    for name, default in vars(Defaults).items():
        if name.startswith("_") or default is None or name not in config:
            continue
        value = config[name]
        if not _same_kind(value, default):
            raise ConfigError(f"CONSENT_GATEWAY_{name} must be {_kind(default)}, not {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and value < (1 if name in _POSITIVE else 0):
            raise ConfigError(f"CONSENT_GATEWAY_{name} must be at least {1 if name in _POSITIVE else 0}")
    unknown = {str(item) for item in config["BINDING_MODALITIES"]} - _MODALITIES
    if unknown:
        raise ConfigError(f"CONSENT_GATEWAY_BINDING_MODALITIES: unknown modality {sorted(unknown)[0]!r}; "
                          f'a JSON list of {" and ".join(sorted(_MODALITIES))}, e.g. ["face"] (or [] for none)')
    if config["TICKET_TTL_SECONDS"] > TICKET_MAX_LIFETIME.total_seconds():
        raise ConfigError(f"CONSENT_GATEWAY_TICKET_TTL_SECONDS is at most {TICKET_MAX_LIFETIME.total_seconds():.0f}")
    upload_dir = str(config["UPLOAD_DIR"] or "")
    if upload_dir and os.path.exists(upload_dir) and not os.path.isdir(upload_dir):
        raise ConfigError(f"CONSENT_GATEWAY_UPLOAD_DIR {upload_dir!r} is not a directory")


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str | os.PathLike)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple) and all(isinstance(item, str | Mapping) for item in value)
    return True


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, list | tuple):
        return "a JSON list"
    return "text"


def _check_database_url(url: str) -> None:
    """Refuse at start a URL no engine can be made from, rather than with a traceback at first use."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("CONSENT_GATEWAY_DATABASE_URL is not a database URL (sqlite:///path or "
                          "postgresql+psycopg://user@host/db)") from None
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(f"CONSENT_GATEWAY_DATABASE_URL: the database is SQLite or PostgreSQL through psycopg 3 "
                          f"(postgresql+psycopg://…), not {parsed.drivername}")
