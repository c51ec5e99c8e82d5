"""``POST /v1/labels/verify`` is public, multipart, bounded, and stores nothing."""

from __future__ import annotations

import io

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, func, select

from gateway.core.db import db
from tests.gateway.labels import media
from tests.gateway.labels.conftest import CONTEXT, label_with


def _counts(app: Flask) -> dict[str, int]:
    meta = MetaData()
    with app.app_context():
        meta.reflect(db.engine)
        return {name: db.session.scalar(select(func.count()).select_from(table)) or 0
                for name, table in meta.tables.items() if name != "alembic_version"}


def test_verifying_needs_no_token_and_stores_nothing(app: Flask, client: FlaskClient) -> None:
    labelled = label_with(app, media.png())
    before = _counts(app)
    response = client.post("/v1/labels/verify", data={"file": (io.BytesIO(labelled), "x.png")})
    assert response.status_code == 200
    report = response.get_json()
    assert report["valid"] is True
    assert report["label"]["ProduceID"] == CONTEXT.decision_id
    assert report["decision"] is None  # labelled outside a real decision: the label verifies, our records are silent
    assert report["consents"] == [{"id": CONTEXT.consents[0], "status": None, "active": False}]
    assert report["consents_active"] is False
    assert _counts(app) == before


def test_bad_uploads_get_problems(app: Flask, client: FlaskClient) -> None:
    cases = [
        ({"json": {"file": "aGVsbG8="}}, 415, "unsupported_media_type"),
        ({"data": {"other": (io.BytesIO(b"x"), "x.png")}}, 422, "validation_failed"),
        ({"data": {"file": [(io.BytesIO(b"x"), "a.png"), (io.BytesIO(b"y"), "b.png")]}}, 422, "validation_failed"),
    ]
    for kwargs, status, code in cases:
        response = client.post("/v1/labels/verify", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, kwargs
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] == code

    app.config["MAX_UPLOAD_MB"] = 1
    response = client.post("/v1/labels/verify", data={"file": (io.BytesIO(b"\0" * (2 * 1024 * 1024)), "big.png")})
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"
