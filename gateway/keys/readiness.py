"""Can this process do its work now: reach the database and sign with the active key?"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway.core.db import db
from gateway.keys.keyring import signer
from gateway.keys.store import KeyStoreError


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


def check() -> Readiness:
    """Each check is "ok" or says why not; a failure never raises (the answer is "not ready")."""
    checks: dict[str, str] = {}
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the answer
        checks["database"] = f"unavailable: {type(exc).__name__}"
    if checks["database"] == "ok":
        try:
            with db.unit_of_work() as session:
                signer(session)
            checks["signing_key"] = "ok"
        except KeyStoreError as exc:
            checks["signing_key"] = f"unavailable: {exc}"
        except SQLAlchemyError as exc:
            # The server answers, but the tables are not there (or not as this version needs them).
            checks["signing_key"] = (f"unavailable: {type(exc).__name__}; has `consent-gateway init` "
                                     "run on this database?")
    else:
        checks["signing_key"] = "unknown: database unavailable"
    return Readiness(checks)
