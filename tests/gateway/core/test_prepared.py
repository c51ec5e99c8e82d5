"""Prepared statements run on the session's own connection give what SQLAlchemy gives, and fail the same way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import bindparam, case, insert, literal_column, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from consent.models import Consent
from gateway.core.db import db, standalone
from gateway.core.prepared import Prepared
from gateway.decisions.models import DecisionRow
from tests.factories import make_app_client, make_consent, register_algorithm

CONSENTS = Consent.__table__.c
DECISIONS = DecisionRow.__table__
NOW = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)


def _decision(decision_id: str, client_id: str) -> dict[str, object]:
    return {"id": decision_id, "client_id": client_id, "operation": "face_swap", "algorithm": "ALG-1",
            "consents": ["con_a", "con_b"], "media": {"source": "ab" * 32}, "created_at": NOW, "allowed": True,
            "reason": None, "ticket_expires_at": NOW, "outcome": None, "output_sha256": None, "outcome_at": None}


def test_rows_are_read_and_typed_as_sqlalchemy_reads_them(app: Flask) -> None:
    edit_app = make_app_client(app, scope="edit:face")
    consent_id = make_consent(app, edit_app.client_id)
    statement = standalone(select(*Consent.__table__.c, literal_column("1").label("one"))
                           .where(CONSENTS.id == bindparam("consent_id")))
    with app.app_context():
        connection = db.session.connection()
        expected = connection.execute(statement, {"consent_id": consent_id}).all()
        rows = Prepared(statement).rows(connection, {"consent_id": consent_id})
        assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
        assert rows[0].id == consent_id
        assert rows[0].one == 1
        assert isinstance(rows[0].operations, list)
        assert rows[0].created_at.tzinfo is not None
        assert Prepared(statement).rows(connection, {"consent_id": "con_nobody"}) == []


def test_inserts_and_returning_update_with_literals_in_the_statement(app: Flask) -> None:
    edit_app = make_app_client(app, scope="edit:face")
    register_algorithm(app, "ALG-1", operations=("face_swap",))
    add = Prepared(insert(DECISIONS).values({c.name: bindparam(c.name, type_=c.type) for c in DECISIONS.c}))
    # "done" is a literal of the statement: a parameter the caller does not give.
    finish = Prepared(update(DECISIONS).where(DECISIONS.c.id == bindparam("decision_id"))
                      .values(outcome=case((DECISIONS.c.allowed, "done"), else_=None),
                              outcome_at=bindparam("now", type_=DECISIONS.c.outcome_at.type))
                      .returning(DECISIONS.c.id, DECISIONS.c.outcome, DECISIONS.c.outcome_at))
    with app.app_context():
        connection = db.session.connection()
        add.run(connection, _decision("dec_1", edit_app.client_id))
        assert [tuple(r) for r in finish.rows(connection, {"decision_id": "dec_1", "now": NOW})] == [
            ("dec_1", "done", NOW)]
        db.session.commit()
    with app.app_context():
        stored = db.session.get(DecisionRow, "dec_1")
        assert stored is not None
        assert (stored.consents, stored.media, stored.created_at) == (["con_a", "con_b"], {"source": "ab" * 32}, NOW)


def test_a_driver_error_is_a_sqlalchemy_error_and_rolls_back(app: Flask) -> None:
    edit_app = make_app_client(app, scope="edit:face")
    add = Prepared(insert(DECISIONS).values({c.name: bindparam(c.name, type_=c.type) for c in DECISIONS.c}))
    with app.app_context():
        add.run(db.session.connection(), _decision("dec_1", edit_app.client_id))
        with pytest.raises(SQLAlchemyError):  # the same primary key again
            add.run(db.session.connection(), _decision("dec_1", edit_app.client_id))
        db.session.rollback()
        assert db.session.get(DecisionRow, "dec_1") is None


def test_a_missing_parameter_is_refused_before_anything_runs(app: Flask) -> None:
    statement = Prepared(standalone(select(CONSENTS.id).where(CONSENTS.id == bindparam("consent_id"))))
    with app.app_context(), pytest.raises(KeyError):
        statement.rows(db.session.connection(), {})


def test_expanding_lists_are_not_prepared(app: Flask) -> None:
    statement = Prepared(select(CONSENTS.id).where(CONSENTS.id.in_(bindparam("ids", expanding=True))))
    with app.app_context(), pytest.raises(ValueError, match="expanding"):
        statement.rows(db.session.connection(), {"ids": ["a"]})


def test_a_lost_postgresql_connection_fails_the_statement_and_the_pool_recovers(app: Flask) -> None:
    if db_backend(app) != "postgresql":
        pytest.skip("a server-side disconnect is a PostgreSQL matter")
    edit_app = make_app_client(app, scope="edit:face")
    consent_id = make_consent(app, edit_app.client_id)
    statement = Prepared(standalone(select(CONSENTS.id).where(CONSENTS.id == bindparam("consent_id"))))
    with app.app_context():
        connection = db.session.connection()
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(SQLAlchemyError):
            statement.rows(connection, {"consent_id": consent_id})
        db.session.rollback()
    with app.app_context():
        assert [row.id for row in statement.rows(db.session.connection(), {"consent_id": consent_id})] == [consent_id]


def db_backend(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name
