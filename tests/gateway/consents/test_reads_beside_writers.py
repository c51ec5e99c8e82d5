"""Reads do not queue behind writers: SQLite has one write lock, and reading or listing consents or polling
a consent request must not take it (an app polls while the person decides; decisions write all the time)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import bearer, create_consent_request, make_consent
from tests.gateway.consents.conftest import Caller


def _answered_while_locked(database_url: str, call: Callable[[], int]) -> list[int]:
    """``call``'s status codes if it was answered while another connection held the write lock, else []."""
    # Another process's writer, as a decision or a grant in a second gateway worker would hold it.
    writer = sqlite3.connect(database_url.split(":///", 1)[1], isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    answers: list[int] = []
    try:
        reader = threading.Thread(target=lambda: answers.append(call()))
        reader.start()
        # The gateway's busy timeout is 30 s: a read that took the write lock would still be waiting.
        reader.join(timeout=10)
        answered = not reader.is_alive()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    reader.join()
    return answers if answered else []


@pytest.fixture
def sqlite_url(database_url: str) -> str:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's single write lock")
    return database_url


def test_reading_a_consent_is_answered_while_another_process_holds_the_write_lock(
    app: Flask, client: FlaskClient, caller: Caller, sqlite_url: str
) -> None:
    consent_id = make_consent(app, caller.app.client_id)
    assert _answered_while_locked(sqlite_url, lambda: client.get(
        f"/v1/consents/{consent_id}", headers=bearer(caller.token)).status_code) == [200]


def test_polling_a_consent_request_is_answered_while_another_process_holds_the_write_lock(
    client: FlaskClient, caller: Caller, sqlite_url: str
) -> None:
    created = create_consent_request(client, caller.token)
    assert _answered_while_locked(sqlite_url, lambda: client.get(
        f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token)).status_code) == [200]


def test_listing_consents_is_answered_while_another_process_holds_the_write_lock(
    app: Flask, client: FlaskClient, caller: Caller, sqlite_url: str
) -> None:
    for _ in range(3):
        make_consent(app, caller.app.client_id)
    first = client.get("/v1/consents?limit=2", headers=bearer(caller.token)).get_json()
    assert _answered_while_locked(sqlite_url, lambda: client.get(
        f"/v1/consents?limit=2&cursor={first['next_cursor']}", headers=bearer(caller.token)).status_code) == [200]
