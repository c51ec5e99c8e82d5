"""The hosted consent screen, ``/consent/<request_id>``: prove the contact, read the notice, decide.

Each view parses the form, calls one service of ``gateway.consents.portal`` and renders the step it
returns. Refusals that must be remembered — a wrong code (its attempt is counted) or a rate-limited
send — are *returned* as pages so that the request boundary commits them. A code form sent twice
(a reload of the page that answered a wrong code) is not checked twice: it is redirected to the
screen, which repeats the answer once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import current_app, g, redirect, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers.response import Response as WerkzeugResponse

from consent import errors
from consent.operations import LOCALES
from gateway.biometrics.binding import BindingSettings, SelfieNeeded, bound_modalities
from gateway.biometrics.faces import BiometricsUnavailable, EnrolmentRefused
from gateway.consents import portal
from gateway.consents.services import RateLimited
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.http.context import request_journal
from gateway.http.portal import session
from gateway.http.portal.blueprint import bp
from gateway.http.portal.openapi import CodeForm, ContactForm, DecisionForm, form_target, html_page
from gateway.http.portal.pages import code_error, code_message, listed, op_label, origin, page, rate_limited
from gateway.i18n import translate


@bp.get("/consent/<request_id>")
def consent_screen(request_id: str) -> tuple[str, int]:
    screen = _current_screen(request_id)
    if isinstance(screen, portal.Closed):
        return _closed(screen)
    said = session.take_flash(request_id)
    return _step(screen, error=code_message(screen.locale, *said) if said else None)


def _current_screen(request_id: str) -> portal.Screen | portal.Closed:
    """The step this browser is at for the request."""
    now = utcnow()
    return portal.show_request(db.session, request_id, stage=session.stage(session.pending(request_id), now),
                               locale_for=session.choose_locale, journal=request_journal(now), now=now)


@bp.post("/consent/<request_id>/code")
def consent_code(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    # Empty for "send a new code": it goes where this browser's last code for the request went.
    raw = request.form.get("contact", "")
    state = session.pending(request_id)
    try:
        outcome = portal.send_code(db.session, request_id, raw, previous_code_id=session.sent_code(state),
                                   stage=session.stage(state, now), ip=session.client_ip(),
                                   locale_for=session.choose_locale, journal=request_journal(now), now=now)
    except RateLimited as exc:
        return rate_limited(session.current_locale(), exc,
                            back=url_for("portal.consent_screen", request_id=request_id))
    if isinstance(outcome, portal.Closed):
        return _closed(outcome)
    if isinstance(outcome, portal.Refused):
        # Back to entering an address: whatever this browser was sent before is no way forward.
        session.forget_progress(request_id)
        return _refused(outcome, contact_value=raw[:254])
    session.remember_code(outcome.request_id, outcome.code_id, outcome.masked_contact)
    return redirect(url_for("portal.consent_screen", request_id=outcome.request_id), 303)


@bp.post("/consent/<request_id>/verify")
def consent_verify(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    if not session.fresh_attempt(request_id, request.form.get("attempt")):
        # Sent before (a reload, the back button, a double click): answered already, not counted again.
        return redirect(url_for("portal.consent_screen", request_id=request_id), 303)
    state = session.pending(request_id)
    try:
        outcome = portal.check_code(db.session, request_id, code_id=session.sent_code(state),
                                    presented=request.form.get("code", ""), stage=session.stage(state, now),
                                    ip=session.client_ip(), locale_for=session.choose_locale,
                                    journal=request_journal(now), now=now)
    except RateLimited as exc:
        return rate_limited(session.current_locale(), exc,
                            back=url_for("portal.consent_screen", request_id=request_id))
    if isinstance(outcome, portal.Closed):
        return _closed(outcome)
    if isinstance(outcome, portal.Refused):
        if isinstance(outcome.reason, errors.CodeRejected):
            session.remember_refusal(request_id, outcome.reason.code, _attempts_left(outcome.reason))
        return _refused(outcome)
    session.remember_proof(outcome.request_id, outcome.subject_id, outcome.authn, now)
    # Proving the contact here also signs the person in to /me, where they can withdraw later.
    session.sign_in(outcome.subject_id, now)
    return redirect(url_for("portal.consent_screen", request_id=outcome.request_id), 303)


@bp.post("/consent/<request_id>/decision")
def consent_decision(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    # The form may carry a selfie (a phone photo is a few MB): this route alone reads a larger body.
    request.max_content_length = SELFIE_MAX_BYTES
    try:
        action = request.form.get("action")  # the body is read here, where a too large one is answered
    except RequestEntityTooLarge:
        return _screen_again(request_id, 413, "error.selfie_too_large", mb=SELFIE_MAX_BYTES // (1024 * 1024))
    session.check_csrf()
    if action not in ("approve", "decline"):
        # Only the two buttons decide: a form that says neither grants nothing.
        return _screen_again(request_id, 422, "error.no_action")
    now = utcnow()
    form_locale = request.form.get("locale", "")

    def locale_for(hint: str | None) -> str:
        # The notice is recorded in the locale it was read in, whatever ?lang= says now.
        return form_locale if form_locale in LOCALES else session.choose_locale(hint)

    binding = BindingSettings.from_config(current_app.config)
    selfie, video = request.files.get("selfie"), request.files.get("selfie_video")
    choice = portal.Choice(decline=action == "decline",
                           operations=tuple(request.form.getlist("operations")),
                           notice_sha256=request.form.get("notice_sha256", ""),
                           selfie=selfie.read() if selfie is not None else None,
                           selfie_video=video.read() if video is not None else None,
                           challenge=session.liveness_challenge(request_id) if binding.liveness else ())
    outcome = portal.decide(db.session, request_id, choice, session.proof(session.pending(request_id), now),
                            locale_for=locale_for, binding=binding, journal=request_journal(now), now=now)
    if isinstance(outcome, portal.Closed):
        return _closed(outcome)
    if isinstance(outcome, portal.ProveAgain):
        session.forget_progress(outcome.screen.request.id)
        screen = outcome.screen
        return _step(screen, status=401, error=translate(screen.locale, "error.session"))
    if isinstance(outcome, portal.Refused):
        # The boxes stay as the person ticked them: only the photo has to be chosen again.
        return _refused(outcome, chosen=choice.operations)
    return _decided(outcome)


def _screen_again(request_id: str, status: int, key: str, **values: Any) -> tuple[str, int]:
    """The step the browser is at, saying why nothing was decided (and nothing was kept)."""
    screen = _current_screen(request_id)
    if isinstance(screen, portal.Closed):
        return _closed(screen)
    return _step(screen, status=status, error=translate(screen.locale, key, **values))


@bp.get("/consent/<request_id>/code")
@bp.get("/consent/<request_id>/verify")
@bp.get("/consent/<request_id>/decision")
@bp.get("/consent/<request_id>/start-over")
def consent_form_target(request_id: str) -> WerkzeugResponse:
    """A form's target opened as a page (the address bar after a step, history, a shared link): the screen
    says where the request stands (already answered, or the step this browser is at)."""
    return redirect(url_for("portal.consent_screen", request_id=request_id), 303)


@bp.post("/consent/<request_id>/start-over")
def consent_start_over(request_id: str) -> WerkzeugResponse:
    """This browser forgets what it proved for the request ("use another address", "not you?")."""
    session.check_csrf()
    session.start_over(request_id)
    return redirect(url_for("portal.consent_screen", request_id=request_id), 303)


def _attempts_left(reason: errors.CodeRejected) -> int | None:
    return reason.attempts_left if isinstance(reason, errors.WrongCode) else None


# --- rendering ----------------------------------------------------------------------------------------


_ANSWERED = {"granted": "done.already_granted", "declined": "done.already_declined", "expired": "done.expired"}


def _closed(closed: portal.Closed) -> tuple[str, int]:
    req, locale, name = closed.request, closed.locale, closed.app
    key = _ANSWERED.get(req.status, "done.already")
    # Back to the app, which can send a new request (only ever a URI the app registered).
    back = _with_query(req.redirect_uri, request_id=req.id, status=req.status) if req.redirect_uri else None
    return page("done.html", locale, 409 if req.status != "expired" else 410, app=name,
                message=translate(locale, key, app=name), back=back)


def _step(screen: portal.Screen, *, status: int = 200, error: str | None = None,
          contact_value: str = "", chosen: tuple[str, ...] = ()) -> tuple[str, int]:
    """Render whichever step this browser is at for the request."""
    req, locale, name, about = screen.request, screen.locale, screen.app, screen.about
    g.img_src_extra = origin(about.logo_uri)
    state = session.pending(req.id)
    # Where the app did not name the person, they may start again with another address.
    start_over = url_for("portal.consent_start_over", request_id=req.id) if req.subject_id is None else None
    if screen.stage == "notice":
        g.form_action_extra = origin(req.redirect_uri)
        binding = BindingSettings.from_config(current_app.config)
        selfie_for = bound_modalities(req.operations, binding)
        # With liveness on, the selfie is a short video answering these turns (read aloud on the page).
        turns = [translate(locale, f"turn.{turn}") for turn in session.liveness_challenge(req.id)] \
            if selfie_for and binding.liveness else []
        return page("notice.html", locale, status, req=req, notice=screen.notice, app=name, about=about, error=error,
                    masked=session.masked_contact(state), start_over=start_over, selfie_for=selfie_for,
                    turns=listed(locale, turns) if turns else None, chosen=chosen)
    if screen.stage == "code":
        masked = session.masked_contact(state)
        return page("code.html", locale, status, action=url_for("portal.consent_verify", request_id=req.id),
                    resend=url_for("portal.consent_code", request_id=req.id), masked=masked,
                    resend_key="code.resend_to" if masked else None, app=name, about=about, error=error,
                    attempt=session.attempt_token(req.id), spent=session.code_spent(req.id), start_over=start_over)
    return page("contact.html", locale, status, action=url_for("portal.consent_code", request_id=req.id),
                masked=screen.masked_contact, app=name, about=about, error=error, contact_value=contact_value,
                intro=translate(locale, "consent.asks", app=name))


_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    errors.InvalidContact: (422, "error.invalid_contact"),
    errors.NoOperationChosen: (422, "error.no_operation"),
    errors.NoticeChanged: (409, "error.notice_changed"),
    SelfieNeeded: (422, "error.selfie_needed"),
    BiometricsUnavailable: (503, "error.binding_unavailable"),
}
# A selfie larger than this is refused before it is read (413); phones send 2 to 8 MB.
SELFIE_MAX_BYTES = 20 * 1024 * 1024


def _refused(refused: portal.Refused, *, contact_value: str = "",
             chosen: tuple[str, ...] = ()) -> tuple[str, int]:
    locale, reason = refused.screen.locale, refused.reason
    if isinstance(reason, errors.CodeRejected):
        return _step(refused.screen, status=400, error=code_error(locale, reason))
    if isinstance(reason, EnrolmentRefused):
        # Each reason tells the person what to do differently (closer, better light, alone in the picture).
        return _step(refused.screen, status=422, error=translate(locale, f"error.enrolment.{reason.code}"),
                     chosen=chosen)
    status, key = next(rule for kind, rule in _REFUSALS.items() if isinstance(reason, kind))
    return _step(refused.screen, status=status, error=translate(locale, key), contact_value=contact_value,
                 chosen=chosen)


def _decided(decided: portal.Decided) -> WerkzeugResponse | tuple[str, int]:
    req, locale, name = decided.request, decided.locale, decided.app
    if req.redirect_uri:
        # Only ever a URI the app registered (checked exactly when the request was created).
        return redirect(_with_query(req.redirect_uri, request_id=req.id, status=req.status), 303)
    if req.status == "granted":
        labels = [op_label(o, locale) for o in (decided.consent.operations if decided.consent else [])]
        message = translate(locale, "done.granted", operations=listed(locale, labels))
    else:
        message = translate(locale, "done.declined", app=name)
    return page("done.html", locale, app=name, message=message)


def _with_query(uri: str, **params: str) -> str:
    parts = urlsplit(uri)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


PATHS: dict[str, Any] = {
    "/consent/{request_id}": html_page("Hosted consent screen: prove the contact, read the notice, decide",
                                       path_param="request_id"),
    "/consent/{request_id}/code": form_target("Send a one-time code to the contact", back_to="/consent/{request_id}",
                                              path_param="request_id", form=ContactForm),
    "/consent/{request_id}/verify": form_target("Check the one-time code", back_to="/consent/{request_id}",
                                                path_param="request_id", form=CodeForm),
    "/consent/{request_id}/decision": form_target("Approve the ticked operations or decline (redirects to the "
                                                  "app's redirect_uri with request_id and status)",
                                                  back_to="/consent/{request_id}", path_param="request_id",
                                                  form=DecisionForm),
    "/consent/{request_id}/start-over": form_target("Forget the address proved in this browser and enter another "
                                                    "(\"not you?\")", back_to="/consent/{request_id}",
                                                    path_param="request_id"),
}
