"""The request boundary owns the commit.

A view that returns normally has its session committed before the response leaves; if the commit
fails, the client gets a 503 instead of a success that was never stored. A view that raised is rolled
back (``g.failed``), so bad input changes nothing. Deny decisions are returned, not raised, because
their audit entry must be committed.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g
from sqlalchemy.exc import SQLAlchemyError

from gateway.problems import Problem, problem_response

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    @app.after_request
    def _commit(response: Response) -> Response:
        session = g.get("db_session")
        if session is None:
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
        after = g.pop("after_commit", [])
        for callback in after:
            callback()
        return response


def after_commit(callback: object) -> None:
    """Run ``callback()`` once the request's transaction has committed (e.g. wake the sequencer)."""
    g.setdefault("after_commit", []).append(callback)
