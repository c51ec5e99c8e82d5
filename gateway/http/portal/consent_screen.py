"""The hosted consent screen, ``/consent/<request_id>``: prove the contact, read the notice, decide.

Each view parses the form, calls one service of ``gateway.consents.portal`` and renders the step it
returns. Refusals that must be remembered — a wrong code (its attempt is counted) or a rate-limited
send — are *returned* as pages so that the request boundary commits them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import g, redirect, request, url_for
from werkzeug.wrappers.response import Response as WerkzeugResponse

from consent import errors
from consent.operations import LOCALES, OPERATIONS
from gateway.consents import portal
from gateway.consents.services import RateLimited
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.http.context import request_journal
from gateway.http.portal import session
from gateway.http.portal.blueprint import bp
from gateway.http.portal.openapi import html_page
from gateway.http.portal.pages import code_error, page, rate_limited
from gateway.i18n import translate


@bp.get("/consent/<request_id>")
def consent_screen(request_id: str) -> tuple[str, int]:
    now = utcnow()
    screen = portal.show_request(db.session, request_id, stage=session.stage(session.pending(request_id), now),
                                 locale_for=session.choose_locale, journal=request_journal(now), now=now)
    if isinstance(screen, portal.Closed):
        return _closed(screen)
    return _step(screen)


@bp.post("/consent/<request_id>/code")
def consent_code(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    raw = request.form.get("contact", "")
    try:
        outcome = portal.send_code(db.session, request_id, raw, stage=session.stage(session.pending(request_id), now),
                                   ip=session.client_ip(), locale_for=session.choose_locale,
                                   journal=request_journal(now), now=now)
    except RateLimited as exc:
        return rate_limited(session.current_locale(), exc)
    if isinstance(outcome, portal.Closed):
        return _closed(outcome)
    if isinstance(outcome, portal.Refused):
        return _refused(outcome, contact_value=raw[:254])
    session.remember_code(outcome.request_id, outcome.code_id, outcome.masked_contact)
    return redirect(url_for("portal.consent_screen", request_id=outcome.request_id), 303)


@bp.post("/consent/<request_id>/verify")
def consent_verify(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    state = session.pending(request_id)
    try:
        outcome = portal.check_code(db.session, request_id, code_id=session.sent_code(state),
                                    presented=request.form.get("code", ""), stage=session.stage(state, now),
                                    ip=session.client_ip(), locale_for=session.choose_locale,
                                    journal=request_journal(now), now=now)
    except RateLimited as exc:
        return rate_limited(session.current_locale(), exc)
    if isinstance(outcome, portal.Closed):
        return _closed(outcome)
    if isinstance(outcome, portal.Refused):
        return _refused(outcome)
    session.remember_proof(outcome.request_id, outcome.subject_id, outcome.authn, now)
    # Proving the contact here also signs the person in to /me, where they can withdraw later.
    session.sign_in(outcome.subject_id, now)
    return redirect(url_for("portal.consent_screen", request_id=outcome.request_id), 303)


@bp.post("/consent/<request_id>/decision")
def consent_decision(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    form_locale = request.form.get("locale", "")

    def locale_for(hint: str | None) -> str:
        # The notice is recorded in the locale it was read in, whatever ?lang= says now.
        return form_locale if form_locale in LOCALES else session.choose_locale(hint)

    choice = portal.Choice(decline=request.form.get("action") == "decline",
                           operations=tuple(request.form.getlist("operations")),
                           notice_sha256=request.form.get("notice_sha256", ""))
    outcome = portal.decide(db.session, request_id, choice, session.proof(session.pending(request_id), now),
                            locale_for=locale_for, journal=request_journal(now), now=now)
    if isinstance(outcome, portal.Closed):
        return _closed(outcome)
    if isinstance(outcome, portal.ProveAgain):
        session.forget_progress(outcome.screen.request.id)
        screen = outcome.screen
        return _step(screen, status=401, error=translate(screen.locale, "error.session"))
    if isinstance(outcome, portal.Refused):
        return _refused(outcome)
    return _decided(outcome)


# --- rendering ----------------------------------------------------------------------------------------


def _closed(closed: portal.Closed) -> tuple[str, int]:
    req, locale, name = closed.request, closed.locale, closed.app
    key = "done.expired" if req.status == "expired" else "done.already"
    return page("done.html", locale, 409 if req.status != "expired" else 410, app=name,
                message=translate(locale, key, app=name))


def _step(screen: portal.Screen, *, status: int = 200, error: str | None = None,
          contact_value: str = "") -> tuple[str, int]:
    """Render whichever step this browser is at for the request."""
    req, locale, name = screen.request, screen.locale, screen.app
    if screen.stage == "notice":
        g.form_action_extra = _origin(req.redirect_uri)
        return page("notice.html", locale, status, req=req, notice=screen.notice, app=name, error=error)
    if screen.stage == "code":
        return page("code.html", locale, status, action=url_for("portal.consent_verify", request_id=req.id),
                    resend=url_for("portal.consent_code", request_id=req.id),
                    masked=session.pending(req.id).get("masked"), app=name, error=error,
                    known_contact=req.subject_id is not None)
    return page("contact.html", locale, status, action=url_for("portal.consent_code", request_id=req.id),
                masked=screen.masked_contact, app=name, error=error, contact_value=contact_value,
                intro=translate(locale, "consent.asks", app=name))


_REFUSALS: dict[type[errors.ConsentError], tuple[int, str]] = {
    errors.InvalidContact: (422, "error.invalid_contact"),
    errors.NoOperationChosen: (422, "error.no_operation"),
    errors.NoticeChanged: (409, "error.notice_changed"),
}


def _refused(refused: portal.Refused, *, contact_value: str = "") -> tuple[str, int]:
    locale, reason = refused.screen.locale, refused.reason
    if isinstance(reason, errors.CodeRejected):
        return _step(refused.screen, status=400, error=code_error(locale, reason))
    status, key = next(rule for kind, rule in _REFUSALS.items() if isinstance(reason, kind))
    return _step(refused.screen, status=status, error=translate(locale, key), contact_value=contact_value)


def _decided(decided: portal.Decided) -> WerkzeugResponse | tuple[str, int]:
    req, locale, name = decided.request, decided.locale, decided.app
    if req.redirect_uri:
        # Only ever a URI the app registered (checked exactly when the request was created).
        return redirect(_with_query(req.redirect_uri, request_id=req.id, status=req.status), 303)
    if req.status == "granted":
        labels = [OPERATIONS[o].label(locale) for o in (decided.consent.operations if decided.consent else [])]
        message = translate(locale, "done.granted", operations=", ".join(labels) if locale == "en"
                            else "、".join(labels))
    else:
        message = translate(locale, "done.declined", app=name)
    return page("done.html", locale, app=name, message=message)


def _with_query(uri: str, **params: str) -> str:
    parts = urlsplit(uri)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _origin(uri: str | None) -> str | None:
    if not uri:
        return None
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


PATHS: dict[str, Any] = {
    "/consent/{request_id}": html_page("Hosted consent screen: prove the contact, read the notice, decide",
                                       path_param="request_id"),
    "/consent/{request_id}/code": html_page("Send a one-time code to the contact", method="post",
                                            path_param="request_id"),
    "/consent/{request_id}/verify": html_page("Check the one-time code", method="post", path_param="request_id"),
    "/consent/{request_id}/decision": html_page("Approve the ticked operations or decline (redirects to the "
                                                "app's redirect_uri with request_id and status)",
                                                method="post", path_param="request_id"),
}
