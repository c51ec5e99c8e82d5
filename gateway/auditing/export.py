"""Export bundles: audited first, then written to a spool file in constant memory.

The HTTP export and ``consent-gateway audit export`` both come here, so a bundle is built one way
and every export is an audit entry (who asked for which range) committed before a byte leaves.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO

from flask import Flask
from sqlalchemy.orm import Session

from audit import export as audit_export
from consent.journal import Party
from gateway.auditing import witnesses
from gateway.auditing.runner import seal, verifier_keys
from gateway.auditing.trail import AuditJournal
from gateway.core.db import db
from gateway.core.errors import GatewayError
from gateway.core.times import format_time
from gateway.keys.keyring import key_store
from gateway.keys.store import jwks

DEFAULT_SPAN = timedelta(days=31)


class InvalidRange(GatewayError):
    code = "invalid_range"


@dataclass(frozen=True)
class ExportRange:
    since: datetime
    until: datetime

    @classmethod
    def resolve(cls, since: datetime | None, until: datetime | None, now: datetime) -> ExportRange:
        """``until`` defaults to now and ``since`` to 31 days before it; ``since`` must come first.

        Any such range is accepted, over HTTP as at the command line: an auditor asks for what they must
        check (three years, or up to the end of a month not over yet). A bundle's size and the time it
        takes follow the entries the log holds in the range, not the range's length; months before the
        log began or after the bundle was generated cost nothing and are reported as such.
        """
        end = until or now
        start = since or end - DEFAULT_SPAN
        if not start < end:
            raise InvalidRange("since must be before until")
        return cls(start, end)

    def as_detail(self) -> dict[str, str]:
        return {"since": format_time(self.since), "until": format_time(self.until)}


def export(app: Flask, session: Session, span: ExportRange, now: datetime, *, party: Party,
           request_id: str | None = None, client_id: str | None = None, output: str | None = None) -> IO[bytes]:
    """Audit the export in ``session`` and commit it, then build the bundle; the caller closes it."""
    detail: dict[str, str] = span.as_detail() | ({"output": output} if output else {})
    fields = {"client_id": client_id} if client_id else {}
    AuditJournal(session, now, request_id=request_id).record("audit.exported", party, detail=detail, **fields)
    # On record before a byte leaves: an export that was never logged cannot be served.
    session.commit()
    return build_bundle(app, span, now)


def build_bundle(app: Flask, span: ExportRange, now: datetime) -> IO[bytes]:
    """Seal what is committed, write the bundle to a temporary file and return it rewound."""
    issuer = app.config["ISSUER"]
    # Everything committed so far gets sequenced and signed, so the bundle covers it; the witnesses are
    # asked once (bounded by their timeout) so that the sealed checkpoint can carry their cosignatures.
    seal(app, now)
    witnesses.collect(app, now)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it once streamed
    session = db.read_session()
    try:
        audit_export.write(session, spool, issuer=issuer, since=span.since, until=span.until, now=now,
                           vkeys=verifier_keys(session, issuer), jwks=jwks(key_store().all(session)))
    except BaseException:
        spool.close()
        raise
    finally:
        session.close()
    spool.seek(0)
    return spool
