"""The request boundary owns the commit.

A view that returns normally has its session committed before the response leaves; if the commit
fails, the client gets a 503 instead of a success that was never stored. A view that raised is rolled
back (``g.failed``), so bad input changes nothing. Deny decisions are returned, not raised, because
their audit entry must be committed. A view may have the boundary commit before it renders its
answer (:func:`commit_early`), with the same failure handling.

Input no database column can hold is refused here, before any view runs: PostgreSQL rejects a NUL
character in text outright (SQLite stores it), so an id or filter containing one would otherwise
surface as a 500 on one backend and a miss on the other.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from sqlalchemy.exc import SQLAlchemyError

from gateway.core.problems import Problem, problem_response

log = logging.getLogger(__name__)


NUL = "\x00"


def init_app(app: Flask) -> None:
    app.before_request(_refuse_nul)

    @app.after_request
    def _commit(response: Response) -> Response:
        session = g.get("db_session")
        if session is None:
            return response
        if not session.in_transaction() and not session.dirty:
            # Committed early (the decision view) or never used: committing would only begin and end
            # an empty transaction.
            return response
        if g.get("failed"):
            session.rollback()
            return response
        try:
            session.commit()
        except SQLAlchemyError:
            log.exception("commit failed at the request boundary")
            session.rollback()
            g.problem_code = "database_unavailable"
            return problem_response(
                Problem(503, "database_unavailable", "the change could not be stored; nothing was committed",
                        headers={"Retry-After": "5"})
            )
        return response


def commit_early() -> None:
    """Commit the request's unit of work now, before the view renders its answer.

    For a view whose answer follows from what it has just written, and that writes nothing after it
    (the decision view). On SQLite a write transaction holds the database's only write lock until it
    commits; committed at the boundary, every decision held it while its answer was rendered and the
    response went through Flask, and the other writers queued behind that. A failed commit answers
    503, as at the boundary: nothing was stored.
    """
    session = g.get("db_session")
    if session is None:
        return
    try:
        session.commit()
    except SQLAlchemyError as exc:
        log.exception("early commit failed")
        session.rollback()
        raise Problem(503, "database_unavailable", "the change could not be stored; nothing was committed",
                      headers={"Retry-After": "5"}) from exc


def _refuse_nul() -> None:
    """Path, query, urlencoded form and Basic credentials; JSON bodies are checked by ``parse_value``.

    Multipart bodies are not read here (that would spool an upload before the token is checked);
    their JSON part goes through ``parse_value`` and file names through ``secure_filename``.
    """
    values = [request.path, *request.args.keys(), *request.args.values()]
    if request.mimetype == "application/x-www-form-urlencoded":
        values += [*request.form.keys(), *request.form.values()]
    credentials = request.authorization
    if credentials is not None:
        values += [credentials.username or "", credentials.password or "", credentials.token or ""]
    if any(NUL in value for value in values):
        raise Problem(400, "invalid_characters", "the request contains a NUL character, which no field may hold")
