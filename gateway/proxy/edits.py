"""Proxy mode: decide on the uploaded media, forward them with the ticket, relay the edit back.

The order of commits is the point of this module:

1. the token lookup's transaction ends before the upload is read, so a long upload holds no database
   transaction (on SQLite: no write lock);
2. the decision (a use taken, its audit entry) commits *before* any media leave the gateway, so no
   edit can run on a decision that was never stored;
3. the outcome commits after the upstream answered (failed: with the caller's answer, by the request
   boundary; completed or cut off: when the stream back to the app ends, in a unit of work of its own).

Temporary files are closed (and so gone) as soon as the upstream has the media, and on every other
path through the ``with`` block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Request

from consent.journal import SYSTEM
from consent.policy import BindingCheck
from gateway.auditing.trail import AuditJournal
from gateway.biometrics.binding import MediaFile
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.errors import GatewayError
from gateway.decisions import service as decisions
from gateway.decisions.models import OUTCOME_COMPLETED, OUTCOME_FAILED
from gateway.proxy import upstream
from gateway.proxy.uploads import receive
from gateway.registry.algorithms import get_algorithm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditTerms:
    """What the app's ``request`` part asks for, already validated by the caller."""

    operation: str
    algorithm: str
    consents: tuple[str, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""  # the app's id for the output (the label's PropagateID)


@dataclass(frozen=True)
class Upload:
    """Where and how much the gateway may spool, and how the ``request`` part is read."""

    upload_dir: str
    max_bytes: int
    read_terms: Callable[[bytes | None], EditTerms]


@dataclass(frozen=True)
class Denied:
    result: decisions.DecisionResult


@dataclass(frozen=True)
class Failed:
    context: upstream.EditContext
    error: upstream.UpstreamError


@dataclass(frozen=True)
class Relayed:
    context: upstream.EditContext
    output: upstream.Output
    relay: upstream.Relay


EditResult = Denied | Failed | Relayed
Decide = Callable[[EditTerms, dict[str, str], BindingCheck | None], decisions.DecisionResult]
# Compares the media with the named subjects' templates (None: no named consent requires binding).
Bind = Callable[[EditTerms, list[MediaFile]], BindingCheck | None]


class NoMedia(GatewayError):
    """The body had a ``request`` part but no media part."""

    code = "validation_failed"


def run_edit(app: Flask, request: Request, upload: Upload, *, client_id: str, request_id: str | None,
             decide: Decide, bind: Bind) -> EditResult:
    """Receive the upload, check whose faces it shows, decide on its digests, forward an allowed edit and
    hand back the relay."""
    db.session.commit()  # 1.
    with receive(request, upload_dir=upload.upload_dir, max_bytes=upload.max_bytes,
                 on_request_part=upload.read_terms) as received:
        terms = upload.read_terms(received.request_json)
        if not received.parts:
            raise NoMedia("send at least one media part, named by its role")
        # Before the decision: a face that belongs to nobody who consented is a deny that takes no use.
        binding = bind(terms, [MediaFile(role, part.file) for role, part in received.parts.items()])
        result = decide(terms, received.digests, binding)
        if not result.decision.allowed:
            return Denied(result)
        algorithm = get_algorithm(db.session, terms.algorithm)
        # An allow names a registered algorithm and carries a ticket.
        assert algorithm is not None
        assert result.ticket is not None
        upstream_url = algorithm.upstream_url
        db.session.commit()  # 2.
        context = upstream.EditContext(
            decision_id=result.id, client_id=client_id, operation=terms.operation,
            algorithm=terms.algorithm, consents=terms.consents, media=received.digests, reference=terms.reference,
        )
        try:
            reply = upstream.forward(upstream_url, ticket=result.ticket, context=context,
                                     parameters=terms.parameters, parts=received.parts, request_id=request_id)
        except upstream.UpstreamError as exc:
            _record_failure(context, exc, request_id)
            return Failed(context, exc)
    try:
        output, relay = upstream.relay(reply, context, _outcome_recorder(app, context, request_id))
    except upstream.UpstreamError as exc:
        # An output transform refused the answer (e.g. it cannot be labelled) before anything was sent.
        _record_failure(context, exc, request_id)
        return Failed(context, exc)
    return Relayed(context, output, relay)


def _record_failure(context: upstream.EditContext, exc: upstream.UpstreamError, request_id: str | None) -> None:
    """3. (failed): queued in the request's session, so it commits with the 502 the caller returns."""
    now = utcnow()
    decisions.record_outcome(
        db.session, context.decision_id, client_id=context.client_id, outcome=OUTCOME_FAILED,
        output_sha256=None, actor=SYSTEM, journal=AuditJournal(db.session, now, request_id=request_id), now=now,
        extra={"reason": exc.code, "upstream_status": exc.status, "upstream_code": exc.upstream_code},
    )


def _outcome_recorder(app: Flask, context: upstream.EditContext,
                      request_id: str | None) -> Callable[[bool, str | None], None]:
    def on_done(completed: bool, output_sha256: str | None) -> None:
        # 3. (completed or cut off): the request's own transaction is long committed, so a unit of work.
        extra = {} if completed else {"reason": "stream_interrupted"}
        try:
            with app.app_context(), db.unit_of_work() as session:
                now = utcnow()
                decisions.record_outcome(
                    session, context.decision_id, client_id=context.client_id,
                    outcome=OUTCOME_COMPLETED if completed else OUTCOME_FAILED,
                    output_sha256=output_sha256, actor=SYSTEM,
                    journal=AuditJournal(session, now, request_id=request_id), now=now, extra=extra,
                )
        except Exception:
            log.exception("could not record the outcome of %s", context.decision_id)

    return on_done
