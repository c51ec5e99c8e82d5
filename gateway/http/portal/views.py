"""The subject portal: the hosted consent screen (``/consent/…``) and self-service (``/me``).

Server-rendered HTML that works without JavaScript, in English and Simplified Chinese. State between
steps lives in Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure behind https), so any
gateway process can serve any step; it holds ids and times only, never a contact address.

Refusals that must be remembered — a wrong code (its attempt is counted) or a rate-limited send —
are *returned* as pages so that the request boundary commits them; anything raised is rolled back
and rendered by this blueprint's error handler.
"""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers.response import Response as WerkzeugResponse

from consent import errors, jws, lifecycle
from consent import requests as consent_requests
from consent.journal import Party
from consent.models import CODE_FOR_CONSENT, CODE_FOR_PORTAL, REQUEST_PENDING, Consent, ConsentRequest, Subject
from consent.operations import DEFAULT_LOCALE, LOCALES, OPERATIONS
from consent.records import CONSENT_TYP, REVOCATION_TYP, Notice
from consent.subjects import contact_of, parse_contact
from gateway.consents.notify import NotificationFailed
from gateway.consents.notify import build as build_notifier
from gateway.consents.services import (
    RateLimited,
    app_name,
    authn_for,
    history,
    notice_for,
    send_consent_code,
    send_portal_code,
    verification_keys,
    verify_code,
)
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import to_problem
from gateway.http import openapi
from gateway.http.context import request_journal
from gateway.i18n import translate
from gateway.keys.contacts import vault
from gateway.keys.keyring import signer

bp = Blueprint("portal", __name__)

# How long a proved contact stays proved in this browser: long enough to read the notice calmly,
# short enough that a shared computer does not stay signed in.
SIGN_IN_TTL = timedelta(minutes=30)
_MAX_PENDING_REQUESTS = 5


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    app = state.app
    # A misconfigured notifier must stop the start, not the first person who asks for a code.
    build_notifier(str(app.config["NOTIFIER"]), str(app.config.get("WEBHOOK_SECRET", "")))
    if str(app.config["ISSUER"]).startswith("https://"):
        # Behind https the session cookie never travels in clear text.
        app.config["SESSION_COOKIE_SECURE"] = True


# --- request-scoped helpers ---------------------------------------------------------------------


def _locale(preferred: str | None = None) -> str:
    """?lang= (remembered), else the app's hint for this request, else Accept-Language, else English."""
    chosen = request.args.get("lang")
    if chosen in LOCALES:
        session["lang"] = chosen
        locale = str(chosen)
    elif session.get("lang") in LOCALES:
        locale = str(session["lang"])
    elif preferred in LOCALES:
        locale = str(preferred)
    else:
        best = request.accept_languages.best_match(["en", "zh-CN", "zh", "zh-Hans"])
        locale = "zh-CN" if best is not None and best.startswith("zh") else DEFAULT_LOCALE
    # Remembered for the error handler, which has no request hint of its own.
    g.portal_locale = locale
    return locale


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


class CsrfFailed(Exception):
    pass


def _check_csrf() -> None:
    expected = session.get("csrf")
    presented = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise CsrfFailed


def _ip() -> str:
    return request.remote_addr or "unknown"


def _page(template: str, locale: str, status: int = 200, **context: Any) -> tuple[str, int]:
    def t(key: str, **values: Any) -> str:
        return translate(locale, key, **values)

    def op_label(name: str) -> str:
        return OPERATIONS[name].label(locale) if name in OPERATIONS else name

    html = render_template(
        f"portal/{template}", t=t, locale=locale, csrf_token=_csrf_token(), op_label=op_label,
        when=_when, lang_url=_lang_url, signed_in=_me() is not None, **context,
    )
    return html, status


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _lang_url(lang: str) -> str:
    args = {k: v for k, v in request.args.items() if k != "lang"}
    return request.path + "?" + urlencode({**args, "lang": lang})


def _error(locale: str, status: int, key: str, **values: Any) -> tuple[str, int]:
    return _page("error.html", locale, status, message=translate(locale, key, **values))


def _rate_limited(locale: str, exc: RateLimited) -> Response:
    minutes = max(1, (exc.retry_after + 59) // 60)
    html, status = _error(locale, 429, "error.rate_limited", minutes=minutes)
    return Response(html, status=status, headers={"Retry-After": str(exc.retry_after)})


def _seen(at: Any, now: datetime) -> bool:
    return isinstance(at, int | float) and now.timestamp() - at < SIGN_IN_TTL.total_seconds()


# --- session state --------------------------------------------------------------------------------


def _pending(request_id: str) -> dict[str, Any]:
    states = session.get("creq")
    if not isinstance(states, dict):
        return {}
    state = states.get(request_id)
    return dict(state) if isinstance(state, dict) else {}


def _set_pending(request_id: str, state: dict[str, Any]) -> None:
    states = session.get("creq")
    states = dict(states) if isinstance(states, dict) else {}
    states.pop(request_id, None)
    states[request_id] = state
    # Bounded: the cookie must stay small however many links someone opens.
    session["creq"] = dict(list(states.items())[-_MAX_PENDING_REQUESTS:])


def _verified_subject(state: dict[str, Any], now: datetime) -> str | None:
    sub = state.get("sub")
    return str(sub) if isinstance(sub, str) and _seen(state.get("at"), now) else None


def _me(now: datetime | None = None) -> str | None:
    me = session.get("me")
    if not isinstance(me, dict):
        return None
    sub = me.get("sub")
    return str(sub) if isinstance(sub, str) and _seen(me.get("at"), now or utcnow()) else None


def _sign_in(subject: Subject, now: datetime) -> None:
    session["me"] = {"sub": subject.id, "at": int(now.timestamp())}
    session.pop("me_pending", None)
    # A new CSRF token from the moment of sign-in: whoever planted a cookie in this browser before
    # (session fixation) knows the old token, and must not be able to forge a signed-in withdrawal.
    session.pop("csrf", None)


# --- the consent screen ----------------------------------------------------------------------------


def _load_request(request_id: str, now: datetime) -> ConsentRequest:
    return consent_requests.get_request(db.session, request_id, journal=request_journal(now), now=now)


def _closed(req: ConsentRequest, locale: str) -> tuple[str, int]:
    name = app_name(db.session, req.client_id)
    key = "done.expired" if req.status == "expired" else "done.already"
    return _page("done.html", locale, 409 if req.status != "expired" else 410, app=name,
                 message=translate(locale, key, app=name))


def _masked_contact(req: ConsentRequest) -> str | None:
    if req.subject_id is None:
        return None
    subject = db.session.get(Subject, req.subject_id)
    return None if subject is None else contact_of(subject, vault()).masked()


def _consent_step(req: ConsentRequest, locale: str, now: datetime, *, status: int = 200,
                  error: str | None = None, contact_value: str = "") -> tuple[str, int]:
    """Render whichever step this browser is at for the request."""
    state = _pending(req.id)
    name = app_name(db.session, req.client_id)
    if _verified_subject(state, now) is not None:
        notice = notice_for(db.session, req, locale)
        g.form_action_extra = _origin(req.redirect_uri)
        return _page("notice.html", locale, status, req=req, notice=notice, app=name, error=error)
    if state.get("code"):
        return _page("code.html", locale, status, action=url_for("portal.consent_verify", request_id=req.id),
                     resend=url_for("portal.consent_code", request_id=req.id), masked=state.get("masked"),
                     app=name, error=error, known_contact=req.subject_id is not None)
    return _page("contact.html", locale, status, action=url_for("portal.consent_code", request_id=req.id),
                 masked=_masked_contact(req), app=name, error=error, contact_value=contact_value,
                 intro=translate(locale, "consent.asks", app=name))


@bp.get("/consent/<request_id>")
def consent_screen(request_id: str) -> tuple[str, int]:
    now = utcnow()
    req = _load_request(request_id, now)
    locale = _locale(req.locale)
    if req.status != REQUEST_PENDING:
        return _closed(req, locale)
    return _consent_step(req, locale, now)


@bp.post("/consent/<request_id>/code")
def consent_code(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    _check_csrf()
    now = utcnow()
    req = _load_request(request_id, now)
    locale = _locale(req.locale)
    if req.status != REQUEST_PENDING:
        return _closed(req, locale)
    entered = None
    if req.subject_id is None:
        raw = request.form.get("contact", "")
        try:
            entered = parse_contact(raw)
        except errors.InvalidContact:
            return _consent_step(req, locale, now, status=422, contact_value=raw[:254],
                                 error=translate(locale, "error.invalid_contact"))
    try:
        sent = send_consent_code(db.session, req, entered, ip=_ip(), locale=locale, now=now)
    except RateLimited as exc:
        return _rate_limited(locale, exc)
    _set_pending(req.id, {"code": sent.code_id, "masked": sent.masked_contact})
    return redirect(url_for("portal.consent_screen", request_id=req.id), 303)


@bp.post("/consent/<request_id>/verify")
def consent_verify(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    _check_csrf()
    now = utcnow()
    req = _load_request(request_id, now)
    locale = _locale(req.locale)
    if req.status != REQUEST_PENDING:
        return _closed(req, locale)
    state = _pending(req.id)
    try:
        subject = verify_code(db.session, code_id=state.get("code"), purpose=CODE_FOR_CONSENT, request_id=req.id,
                              presented=request.form.get("code", ""), ip=_ip(), now=now)
    except RateLimited as exc:
        return _rate_limited(locale, exc)
    except errors.CodeRejected as exc:
        # Returned, not raised: the counted attempt and its audit entry must be committed.
        return _consent_step(req, locale, now, status=400, error=_code_error(locale, exc))
    _set_pending(req.id, {"sub": subject.id, "at": int(now.timestamp()), "authn": authn_for(subject)})
    # Proving the contact here also signs the person in to /me, where they can withdraw later.
    _sign_in(subject, now)
    return redirect(url_for("portal.consent_screen", request_id=req.id), 303)


def _code_error(locale: str, exc: errors.CodeRejected) -> str:
    if isinstance(exc, errors.WrongCode):
        return translate(locale, "error.code_invalid", left=exc.attempts_left)
    return translate(locale, f"error.{exc.code}")


@bp.post("/consent/<request_id>/decision")
def consent_decision(request_id: str) -> WerkzeugResponse | tuple[str, int]:
    _check_csrf()
    now = utcnow()
    req = _load_request(request_id, now)
    locale = request.form.get("locale", "")
    locale = locale if locale in LOCALES else _locale(req.locale)
    if req.status != REQUEST_PENDING:
        return _closed(req, locale)
    state = _pending(req.id)
    subject_id = _verified_subject(state, now)
    if subject_id is None:
        _set_pending(req.id, {})
        return _consent_step(req, locale, now, status=401, error=translate(locale, "error.session"))
    journal = request_journal(now)
    if request.form.get("action") == "decline":
        consent_requests.decline(db.session, req, subject_id=subject_id, journal=journal, now=now)
        return _after_decision(req, locale)
    notice = notice_for(db.session, req, locale)
    approval = lifecycle.Approval(
        subject_id=subject_id,
        operations=tuple(request.form.getlist("operations")),
        notice=Notice(version=notice.version, sha256=notice.sha256, locale=notice.locale),
        presented_notice_sha256=request.form.get("notice_sha256", ""),
        authn=str(state.get("authn") or "otp"),
        authenticated_at=datetime.fromtimestamp(float(state.get("at") or now.timestamp()), tz=now.tzinfo),
    )
    try:
        lifecycle.grant(db.session, req, approval, signer=signer(db.session), journal=journal, now=now)
    except errors.NoOperationChosen:
        return _consent_step(req, locale, now, status=422, error=translate(locale, "error.no_operation"))
    except errors.NoticeChanged:
        return _consent_step(req, locale, now, status=409, error=translate(locale, "error.notice_changed"))
    return _after_decision(req, locale)


def _after_decision(req: ConsentRequest, locale: str) -> WerkzeugResponse | tuple[str, int]:
    if req.redirect_uri:
        # Only ever a URI the app registered (checked exactly when the request was created).
        return redirect(_with_query(req.redirect_uri, request_id=req.id, status=req.status), 303)
    name = app_name(db.session, req.client_id)
    if req.status == "granted":
        consent = db.session.get(Consent, req.consent_id) if req.consent_id else None
        labels = [OPERATIONS[o].label(locale) for o in (consent.operations if consent else [])]
        message = translate(locale, "done.granted", operations=", ".join(labels) if locale == "en"
                            else "、".join(labels))
    else:
        message = translate(locale, "done.declined", app=name)
    return _page("done.html", locale, app=name, message=message)


def _with_query(uri: str, **params: str) -> str:
    parts = urlsplit(uri)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _origin(uri: str | None) -> str | None:
    if not uri:
        return None
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


# --- self-service: /me ------------------------------------------------------------------------------


def _login_page(locale: str, *, status: int = 200, error: str | None = None,
                contact_value: str = "") -> tuple[str, int]:
    pending = session.get("me_pending")
    if isinstance(pending, dict) and pending.get("code") is not None:
        return _page("code.html", locale, status, action=url_for("portal.me_verify"),
                     resend=url_for("portal.me_code"), masked=pending.get("masked"), app=None, error=error,
                     known_contact=False, sent_key="me.login.sent")
    return _page("contact.html", locale, status, action=url_for("portal.me_code"), masked=None, app=None,
                 error=error, contact_value=contact_value, intro=translate(locale, "me.login"))


@bp.get("/me")
def me() -> tuple[str, int]:
    now = utcnow()
    locale = _locale()
    subject_id = _me(now)
    if subject_id is None:
        return _login_page(locale)
    rows = lifecycle.list_consents(db.session, subject_id=subject_id, limit=200,
                                   journal=request_journal(now), now=now)
    names = {row.client_id: app_name(db.session, row.client_id) for row in rows}
    return _page("me.html", locale, consents=rows, names=names)


@bp.post("/me/code")
def me_code() -> WerkzeugResponse | tuple[str, int]:
    _check_csrf()
    now = utcnow()
    locale = _locale()
    raw = request.form.get("contact")
    if raw is None:
        # "Send a new code": the contact is not kept in the cookie, so ask for it again.
        session.pop("me_pending", None)
        return redirect(url_for("portal.me"), 303)
    try:
        entered = parse_contact(raw)
    except errors.InvalidContact:
        session.pop("me_pending", None)
        return _login_page(locale, status=422, error=translate(locale, "error.invalid_contact"),
                           contact_value=raw[:254])
    try:
        sent = send_portal_code(db.session, entered, ip=_ip(), locale=locale, now=now)
    except RateLimited as exc:
        return _rate_limited(locale, exc)
    # An unknown contact gets a dead code id, so the next page looks the same either way.
    session["me_pending"] = {"code": sent.code_id or "otp_none", "masked": sent.masked_contact}
    return redirect(url_for("portal.me"), 303)


@bp.post("/me/verify")
def me_verify() -> WerkzeugResponse | tuple[str, int]:
    _check_csrf()
    now = utcnow()
    locale = _locale()
    pending = session.get("me_pending")
    code_id = pending.get("code") if isinstance(pending, dict) else None
    try:
        subject = verify_code(db.session, code_id=code_id, purpose=CODE_FOR_PORTAL, request_id=None,
                              presented=request.form.get("code", ""), ip=_ip(), now=now)
    except RateLimited as exc:
        return _rate_limited(locale, exc)
    except errors.CodeRejected as exc:
        return _login_page(locale, status=400, error=_code_error(locale, exc))
    _sign_in(subject, now)
    return redirect(url_for("portal.me"), 303)


@bp.post("/me/logout")
def me_logout() -> WerkzeugResponse:
    _check_csrf()
    session.pop("me", None)
    session.pop("me_pending", None)
    session.pop("creq", None)
    return redirect(url_for("portal.me"), 303)


def _my_consent(consent_id: str, now: datetime) -> tuple[str, Consent] | None:
    subject_id = _me(now)
    if subject_id is None:
        return None
    row = lifecycle.get_consent(db.session, consent_id, subject_id=subject_id,
                                journal=request_journal(now), now=now)
    return subject_id, row


def _history_lines(locale: str, entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    lines = []
    for entry in entries:
        action = str(entry.get("action", ""))
        key = f"history.{action}"
        values = {
            "operation": OPERATIONS[entry["operation"]].label(locale) if entry.get("operation") in OPERATIONS
            else entry.get("operation", ""),
            "algorithm": entry.get("algorithm", ""),
            "reason": entry.get("reason", ""),
            "action": action,
        }
        try:
            text = translate(locale, key, **values)
        except KeyError:
            text = translate(locale, "history.other", **values)
        lines.append((str(entry.get("ts", ""))[:19].replace("T", " ") + " UTC", text))
    return lines


@bp.get("/me/consents/<consent_id>")
def me_consent(consent_id: str) -> WerkzeugResponse | tuple[str, int]:
    now = utcnow()
    locale = _locale()
    mine = _my_consent(consent_id, now)
    if mine is None:
        return redirect(url_for("portal.me"), 303)
    subject_id, row = mine
    lines = _history_lines(locale, history(db.session, subject_id, row.id))
    return _page("consent.html", locale, consent=row, app=app_name(db.session, row.client_id), lines=lines,
                 withdrawn=request.args.get("done") == "withdrawn")


@bp.get("/me/consents/<consent_id>/receipt")
def me_receipt(consent_id: str) -> WerkzeugResponse:
    now = utcnow()
    mine = _my_consent(consent_id, now)
    if mine is None:
        return redirect(url_for("portal.me"), 303)
    subject_id, row = mine
    issuer = str(current_app.config["ISSUER"]).rstrip("/")
    keys = verification_keys(db.session)
    receipt = {
        "type": "consent-receipt",
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "consent_id": row.id,
        "status": row.status,
        "record": row.record,
        "revocation": row.revocation,
        # Decoded for people; the JWS above is what proves it (verify it with the JWKS).
        "record_claims": jws.verify(row.record, keys, issuer=issuer, typ=CONSENT_TYP).claims,
        "revocation_claims": None if row.revocation is None
        else jws.verify(row.revocation, keys, issuer=issuer, typ=REVOCATION_TYP).claims,
    }
    request_journal(now).record("receipt.downloaded", Party("subject", subject_id), subject=subject_id,
                                         client_id=row.client_id, consent_id=row.id)
    return Response(
        json.dumps(receipt, ensure_ascii=False, indent=2),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="consent-{row.id}.json"'},
    )


@bp.get("/me/consents/<consent_id>/withdraw")
def me_withdraw_confirm(consent_id: str) -> WerkzeugResponse | tuple[str, int]:
    now = utcnow()
    locale = _locale()
    mine = _my_consent(consent_id, now)
    if mine is None:
        return redirect(url_for("portal.me"), 303)
    _, row = mine
    if row.status != "active":
        return redirect(url_for("portal.me_consent", consent_id=row.id), 303)
    return _page("withdraw.html", locale, consent=row, app=app_name(db.session, row.client_id))


@bp.post("/me/consents/<consent_id>/withdraw")
def me_withdraw(consent_id: str) -> WerkzeugResponse | tuple[str, int]:
    _check_csrf()
    now = utcnow()
    locale = _locale()
    subject_id = _me(now)
    if subject_id is None:
        return _login_page(locale, status=401, error=translate(locale, "error.session"))
    journal = request_journal(now)
    row = lifecycle.get_consent(db.session, consent_id, subject_id=subject_id, journal=journal, now=now,
                                for_update=True)
    try:
        lifecycle.withdraw(db.session, row, reason="withdrawn by the subject on the portal",
                           actor=Party("subject", subject_id), signer=signer(db.session), journal=journal, now=now)
    except errors.ConsentNotActive:
        return _error(locale, 409, "error.consent_not_active")
    return redirect(url_for("portal.me_consent", consent_id=row.id, done="withdrawn"), 303)


# --- errors and headers -------------------------------------------------------------------------------

_ERROR_KEYS: dict[str, str] = {
    "consent_request_not_found": "error.not_found",
    "consent_not_found": "error.not_found",
    "not_found": "error.not_found",
    "subject_mismatch": "error.subject_mismatch",
}


@bp.errorhandler(Exception)
def _portal_error(exc: Exception) -> tuple[str, int]:
    # Like gateway.core.problems' handler (roll back, remember the code for the logs), but as a page.
    g.failed = True
    locale = g.get("portal_locale") or _locale()
    if isinstance(exc, CsrfFailed):
        return _error(locale, 403, "error.csrf")
    if isinstance(exc, NotificationFailed):
        current_app.logger.error("code delivery failed: %s", exc)
        return _error(locale, 503, "error.send_failed")
    problem = to_problem(exc)
    if problem.status >= 500:
        g.problem_code = problem.code
        return _error(locale, problem.status, "error.unavailable")
    return _error(locale, problem.status, _ERROR_KEYS.get(problem.code, "error.generic"))


@bp.after_request
def _security_headers(response: Response) -> Response:
    form_action = " ".join(filter(None, ["'self'", g.get("form_action_extra")]))
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action {form_action}"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Consent URLs are capabilities of a kind: never leak them to another site in a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


# --- OpenAPI ----------------------------------------------------------------------------------------

_HTML = {"text/html": {"schema": {"type": "string"}}}
_FORM = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}


def _html(summary: str, *, method: str = "get", path_param: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["portal"],
        "responses": {"200": {"description": "HTML page", "content": _HTML},
                      "303": {"description": "next step (See Other)"},
                      "4XX": {"description": "HTML page explaining what to do", "content": _HTML}},
    }
    if method == "post":
        operation["requestBody"] = {"required": True, "content": _FORM,
                                    "description": "form fields, always with csrf_token"}
    if path_param:
        operation["parameters"] = [{"name": path_param, "in": "path", "required": True,
                                    "schema": {"type": "string"}}]
    return {method: operation}


PATHS: dict[str, Any] = {
    "/consent/{request_id}": _html("Hosted consent screen: prove the contact, read the notice, decide",
                                   path_param="request_id"),
    "/consent/{request_id}/code": _html("Send a one-time code to the contact", method="post",
                                        path_param="request_id"),
    "/consent/{request_id}/verify": _html("Check the one-time code", method="post", path_param="request_id"),
    "/consent/{request_id}/decision": _html("Approve the ticked operations or decline (redirects to the "
                                            "app's redirect_uri with request_id and status)",
                                            method="post", path_param="request_id"),
    "/me": _html("My consents (sign in with a one-time code)"),
    "/me/code": _html("Send a sign-in code", method="post"),
    "/me/verify": _html("Check the sign-in code", method="post"),
    "/me/logout": _html("Sign out", method="post"),
    "/me/consents/{consent_id}": _html("One consent: status, operations, history of decisions",
                                       path_param="consent_id"),
    "/me/consents/{consent_id}/receipt": {"get": {
        "summary": "Download the signed record and revocation (JSON receipt)", "tags": ["portal"],
        "parameters": [{"name": "consent_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": openapi.json_response("receipt"), "303": {"description": "sign in first"}}}},
}
PATHS["/me/consents/{consent_id}/withdraw"] = {
    **_html("Confirm withdrawal", path_param="consent_id"),
    **_html("Withdraw (after confirmation)", method="post", path_param="consent_id"),
}
