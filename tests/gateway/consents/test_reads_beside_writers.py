"""Reading a consent does not queue behind writers: SQLite has one write lock, and a read must not take it."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import bearer, make_consent
from tests.gateway.consents.conftest import Caller


def test_reading_a_consent_is_answered_while_another_process_holds_the_write_lock(
    app: Flask, client: FlaskClient, caller: Caller, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's single write lock")
    consent_id = make_consent(app, caller.app.client_id)
    # Another process's writer, as a decision or a grant in a second gateway worker would hold it.
    writer = sqlite3.connect(database_url.split(":///", 1)[1], isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    answers: list[int] = []
    try:
        reader = threading.Thread(target=lambda: answers.append(
            client.get(f"/v1/consents/{consent_id}", headers=bearer(caller.token)).status_code))
        reader.start()
        # The gateway's busy timeout is 30 s: a read that took the write lock would still be waiting.
        reader.join(timeout=10)
        answered_while_locked = not reader.is_alive()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    reader.join()
    assert answered_while_locked
    assert answers == [200]
