"""consent/enforcement.py on a real database: the use is taken at the row, whatever was read before."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest
from flask import Flask

from consent import enforcement
from consent.journal import Party
from consent.policy import AlgorithmView, ConsentView, DecisionRequest, DenyReason
from gateway.core.clock import utcnow
from gateway.core.db import db
from tests.factories import App, consent_row, end_consent, make_consent
from tests.gateway.conftest import FILING

ALGORITHM = AlgorithmView(filing_number=FILING, status="active", operations=frozenset({"face_swap"}))
MEDIA = {"source": hashlib.sha256(b"face").hexdigest()}


class ListJournal:
    def __init__(self) -> None:
        self.entries: list[tuple[str, Party, dict[str, Any]]] = []

    def record(self, action: str, party: Party, **fields: Any) -> None:
        self.entries.append((action, party, fields))


def _enforce(app: Flask, edit_app: App, consent_ids: Sequence[str], journal: ListJournal) -> enforcement.Enforcement:
    request = DecisionRequest(client_id=edit_app.client_id, operation="face_swap", algorithm=FILING,
                              consent_ids=tuple(consent_ids), media=MEDIA)
    with app.app_context(), db.unit_of_work() as session:
        return enforcement.enforce(session, request, ALGORITHM, utcnow(), journal)


def test_a_withdrawal_after_the_read_wins_and_the_other_use_is_given_back(
    app: Flask, edit_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = sorted(make_consent(app, edit_app.client_id, max_uses=5) for _ in range(2))
    with app.app_context(), db.unit_of_work() as session:
        stale = enforcement.load_views(session, [first, second])
    # The second consent is withdrawn after this decision read both as active (the race the
    # conditional UPDATE exists for); uses are taken in id order, so the first one is taken first.
    end_consent(app, second, "withdrawn")
    reads: list[Sequence[str]] = []
    fresh = enforcement.load_views

    def first_read_is_stale(session: Any, consent_ids: Sequence[str]) -> list[ConsentView]:
        reads.append(consent_ids)
        return stale if len(reads) == 1 else fresh(session, consent_ids)

    monkeypatch.setattr(enforcement, "load_views", first_read_is_stale)
    journal = ListJournal()
    result = _enforce(app, edit_app, [first, second], journal)

    assert result.decision.reason == DenyReason.CONSENT_WITHDRAWN
    assert result.decision.consent_id == second
    assert len(reads) == 2  # the reason comes from a fresh read
    assert consent_row(app, first) == ("active", 0)
    assert consent_row(app, second) == ("withdrawn", 0)
    assert journal.entries == []


def test_the_last_use_ends_the_consent_and_is_journalled(app: Flask, edit_app: App) -> None:
    consent_id = make_consent(app, edit_app.client_id, max_uses=1)
    journal = ListJournal()
    assert _enforce(app, edit_app, [consent_id], journal).decision.allowed
    assert consent_row(app, consent_id) == ("exhausted", 1)
    [(action, party, fields)] = journal.entries
    assert action == "consent.exhausted"
    assert party.type == "system"
    assert fields["consent_id"] == consent_id
    assert fields["detail"] == {"uses": 1, "max_uses": 1}
    denied = _enforce(app, edit_app, [consent_id], journal).decision
    assert denied.reason == DenyReason.CONSENT_EXHAUSTED
