"""Self-service, ``/me``: sign in with a one-time code, see one's consents and their history, withdraw.

Each view parses the form, calls one service (``gateway.consents.portal``, or the code services of
``gateway.consents.services``) and renders. A wrong code is *returned* as a page so that its counted
attempt commits; the same form sent again (a reload) is redirected to ``/me`` and not counted.
Receipts come two ways: the signed JSON to download and a page to read and print.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from flask import Response, current_app, redirect, request, url_for
from markupsafe import Markup
from pydantic import Field
from werkzeug.wrappers.response import Response as WerkzeugResponse

from consent import errors
from consent.models import CODE_FOR_PORTAL
from consent.subjects import parse_contact
from gateway.consents import portal
from gateway.consents.services import RateLimited, send_portal_code, verify_code
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.http import openapi
from gateway.http.api.consents import EXAMPLE_RECORD, EXAMPLE_RECORD_CLAIMS
from gateway.http.context import request_journal
from gateway.http.openapi import json_response
from gateway.http.portal import session
from gateway.http.portal.blueprint import bp
from gateway.http.portal.openapi import CodeForm, ContactForm, form_target, html_page
from gateway.http.portal.pages import (
    code_error,
    code_message,
    error_page,
    op_label,
    page,
    rate_limited,
    shown_epoch,
    shown_log_time,
)
from gateway.http.schemas import EXAMPLE_CONSENT_ID, EXAMPLE_ISSUER, View
from gateway.i18n import translate


def _login_page(locale: str, *, status: int = 200, error: str | None = None,
                contact_value: str = "") -> tuple[str, int]:
    pending = session.login_code()
    if pending is not None and pending.get("code") is not None:
        # "Send a new code" asks for the address again (it is not kept), as it does for an unknown one.
        return page("code.html", locale, status, action=url_for("portal.me_verify"),
                    resend=url_for("portal.me_code"), masked=pending.get("masked"), app=None, error=error,
                    sent_key="me.login.sent", attempt=session.attempt_token(None), spent=session.code_spent(None),
                    resend_key="me.login.again")
    return page("contact.html", locale, status, action=url_for("portal.me_code"), masked=None, app=None,
                error=error, contact_value=contact_value, intro=translate(locale, "me.login"))


@bp.get("/me")
def me() -> tuple[str, int]:
    now = utcnow()
    locale = session.choose_locale()
    subject_id = session.me(now)
    if subject_id is None:
        said = session.take_flash(None)
        return _login_page(locale, error=code_message(locale, *said) if said else None)
    mine = portal.my_consents(db.session, subject_id, journal=request_journal(now), now=now)
    templates = portal.my_templates(db.session, subject_id, now=now).templates
    return page("me.html", locale, consents=mine.consents, names=mine.names, templates=templates,
                templates_deleted=request.args.get("done") == "templates-deleted")


@bp.get("/me/templates/delete")
def me_templates_confirm() -> WerkzeugResponse | tuple[str, int]:
    """Says which consents end with the templates before anything is deleted."""
    now = utcnow()
    locale = session.choose_locale()
    subject_id = session.me(now)
    if subject_id is None:
        return redirect(url_for("portal.me"), 303)
    mine = portal.my_templates(db.session, subject_id, now=now)
    if not mine.templates:
        # Nothing to delete (already deleted, or never made: Back after deleting): /me says we keep none.
        return redirect(url_for("portal.me", _anchor="templates"), 303)
    return page("templates_delete.html", locale, templates=mine.templates, needing=mine.needing, names=mine.names)


@bp.post("/me/templates/delete")
def me_templates_delete() -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    locale = session.choose_locale()
    subject_id = session.me(now)
    if subject_id is None:
        return _login_page(locale, status=401, error=translate(locale, "error.session"))
    deleted = portal.delete_my_templates(db.session, subject_id, journal=request_journal(now), now=now)
    # "Your templates were deleted" only where some were: a resent form deletes nothing.
    return redirect(url_for("portal.me", done="templates-deleted") if deleted else url_for("portal.me"), 303)


@bp.post("/me/code")
def me_code() -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    locale = session.choose_locale()
    raw = request.form.get("contact")
    if raw is None:
        # "Send a new code": the contact is not kept in the cookie, so ask for it again.
        session.forget_login_code()
        return redirect(url_for("portal.me"), 303)
    try:
        entered = parse_contact(raw)
    except errors.InvalidContact:
        session.forget_login_code()
        return _login_page(locale, status=422, error=translate(locale, "error.invalid_contact"),
                           contact_value=raw[:254])
    try:
        sent = send_portal_code(db.session, entered, ip=session.client_ip(), locale=locale, now=now)
    except RateLimited as exc:
        return rate_limited(locale, exc, back=url_for("portal.me"))
    session.remember_login_code(sent)
    return redirect(url_for("portal.me"), 303)


@bp.post("/me/verify")
def me_verify() -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    locale = session.choose_locale()
    if not session.fresh_attempt(None, request.form.get("attempt")):
        # Sent before (a reload of the wrong-code page): answered already, not counted again.
        return redirect(url_for("portal.me"), 303)
    pending = session.login_code()
    code_id = pending.get("code") if pending is not None else None
    try:
        subject = verify_code(db.session, code_id=code_id, purpose=CODE_FOR_PORTAL, request_id=None,
                              presented=request.form.get("code", ""), ip=session.client_ip(), now=now)
    except RateLimited as exc:
        return rate_limited(locale, exc, back=url_for("portal.me"))
    except errors.CodeRejected as exc:
        if pending is not None:
            # "No code" is what an unknown address always gets; it must not look different from a known one's.
            session.remember_refusal(None, exc.code, exc.attempts_left if isinstance(exc, errors.WrongCode) else None,
                                     final=not isinstance(exc, errors.CodeNotFound))
        return _login_page(locale, status=400, error=code_error(locale, exc))
    session.sign_in(subject.id, now)
    return redirect(url_for("portal.me"), 303)


@bp.get("/me/code")
@bp.get("/me/verify")
@bp.get("/me/logout")
def me_form_target() -> WerkzeugResponse:
    """A sign-in or sign-out form's target opened as a page: /me shows where this browser stands."""
    return redirect(url_for("portal.me"), 303)


@bp.post("/me/logout")
def me_logout() -> WerkzeugResponse:
    session.check_csrf()
    session.sign_out(utcnow())
    return redirect(url_for("portal.me"), 303)


@bp.get("/me/consents/<consent_id>")
def me_consent(consent_id: str) -> WerkzeugResponse | tuple[str, int]:
    now = utcnow()
    locale = session.choose_locale()
    subject_id = session.me(now)
    if subject_id is None:
        return redirect(url_for("portal.me"), 303)
    mine = portal.consent_details(db.session, consent_id, subject_id=subject_id, journal=request_journal(now),
                                  now=now)
    return page("consent.html", locale, consent=mine.consent, app=mine.app,
                algorithms=[algorithm_label(locale, mine.algorithms, n) for n in mine.consent.algorithms or []],
                lines=_history_lines(locale, mine.history, mine.algorithms),
                withdrawn=request.args.get("done") == "withdrawn")


@bp.get("/me/consents/<consent_id>/receipt")
def me_receipt(consent_id: str) -> WerkzeugResponse:
    now = utcnow()
    subject_id = session.me(now)
    if subject_id is None:
        return redirect(url_for("portal.me"), 303)
    receipt = portal.receipt(db.session, consent_id, subject_id=subject_id,
                             issuer=str(current_app.config["ISSUER"]).rstrip("/"), journal=request_journal(now),
                             now=now)
    return Response(
        json.dumps(receipt.document, ensure_ascii=False, indent=2),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="consent-{receipt.consent_id}.json"'},
    )


@bp.get("/me/consents/<consent_id>/receipt.html")
def me_receipt_page(consent_id: str) -> WerkzeugResponse | tuple[str, int]:
    """The receipt to read and print: what the signed record says, in words, beside the record itself."""
    now = utcnow()
    locale = session.choose_locale()
    subject_id = session.me(now)
    if subject_id is None:
        return redirect(url_for("portal.me"), 303)
    receipt = portal.receipt(db.session, consent_id, subject_id=subject_id,
                             issuer=str(current_app.config["ISSUER"]).rstrip("/"), journal=request_journal(now),
                             now=now, form="html")
    claims = receipt.document["record_claims"]
    terms = claims.get("consent", {})
    return page("receipt.html", locale, receipt=receipt, doc=receipt.document, claims=claims, terms=terms,
                revoked=receipt.document["revocation_claims"], epoch=shown_epoch,
                algorithms=[algorithm_label(locale, receipt.algorithms, n) for n in terms.get("algorithms") or []])


@bp.get("/me/consents/<consent_id>/withdraw")
def me_withdraw_confirm(consent_id: str) -> WerkzeugResponse | tuple[str, int]:
    now = utcnow()
    locale = session.choose_locale()
    subject_id = session.me(now)
    if subject_id is None:
        return redirect(url_for("portal.me"), 303)
    mine = portal.my_consent(db.session, consent_id, subject_id=subject_id, journal=request_journal(now), now=now)
    if mine.consent.status != "active":
        return redirect(url_for("portal.me_consent", consent_id=mine.consent.id), 303)
    return page("withdraw.html", locale, consent=mine.consent, app=mine.app)


@bp.post("/me/consents/<consent_id>/withdraw")
def me_withdraw(consent_id: str) -> WerkzeugResponse | tuple[str, int]:
    session.check_csrf()
    now = utcnow()
    locale = session.choose_locale()
    subject_id = session.me(now)
    if subject_id is None:
        return _login_page(locale, status=401, error=translate(locale, "error.session"))
    try:
        row = portal.withdraw(db.session, consent_id, subject_id=subject_id, journal=request_journal(now), now=now)
    except errors.ConsentNotActive:
        return error_page(locale, 409, "error.consent_not_active")
    return redirect(url_for("portal.me_consent", consent_id=row.id, done="withdrawn"), 303)


def algorithm_label(locale: str, names: dict[str, portal.AlgorithmName], filing_number: str) -> str:
    """An algorithm as people know it: its name (and provider) with its filing number."""
    known = names.get(filing_number)
    if known is None or known.name is None:
        return translate(locale, "algorithm.unregistered", filing_number=filing_number)
    return translate(locale, "algorithm.named", name=known.name, provider=known.provider or "",
                     filing_number=filing_number)


def reason_text(locale: str, reason: object) -> str:
    """A deny reason code in words (the code itself only for one this version does not know)."""
    try:
        return translate(locale, f"reason.{reason}")
    except KeyError:
        return translate(locale, "reason.other", reason=reason)


def _history_lines(locale: str, entries: list[dict[str, Any]],
                   names: dict[str, portal.AlgorithmName]) -> list[tuple[Markup, str]]:
    """The audit entries under a consent, worded for the person: (when, what) per entry."""
    lines = []
    for entry in entries:
        action = str(entry.get("action", ""))
        values = {
            "operation": op_label(entry.get("operation", ""), locale),
            "algorithm": algorithm_label(locale, names, str(entry.get("algorithm", ""))),
            "reason": reason_text(locale, entry.get("reason", "")),
            "action": action,
        }
        try:
            text = translate(locale, f"history.{action}", **values)
        except KeyError:
            text = translate(locale, "history.other", **values)
        lines.append((shown_log_time(entry.get("ts", "")), text))
    return lines


class ReceiptView(View):
    """A consent receipt: the signed records, and their claims decoded for people (the JWS is the proof)."""

    type: Literal["consent-receipt"]
    issuer: str
    jwks_uri: str = Field(description="where the keys that verify record and revocation are published")
    consent_id: str = Field(pattern="^cns_")
    status: str
    record: str = Field(description="compact JWS, typ consent+jwt")
    revocation: str | None = Field(description="compact JWS, typ consent-revocation+jwt, once ended early")
    record_claims: dict[str, Any]
    revocation_claims: dict[str, Any] | None


_RECEIPT = {
    "type": "consent-receipt", "issuer": EXAMPLE_ISSUER, "jwks_uri": f"{EXAMPLE_ISSUER}/.well-known/jwks.json",
    "consent_id": EXAMPLE_CONSENT_ID, "status": "active", "record": EXAMPLE_RECORD, "revocation": None,
    "record_claims": EXAMPLE_RECORD_CLAIMS, "revocation_claims": None,
}


PATHS: dict[str, Any] = {
    "/me": html_page("My consents (sign in with a one-time code)"),
    "/me/code": form_target("Send a sign-in code", back_to="/me", form=ContactForm),
    "/me/verify": form_target("Check the sign-in code", back_to="/me", form=CodeForm),
    "/me/logout": form_target("Sign out", back_to="/me"),
    "/me/consents/{consent_id}": html_page("One consent: status, operations, history of decisions",
                                           path_param="consent_id"),
    "/me/consents/{consent_id}/receipt": {"get": {
        "summary": "Download the signed record and revocation (JSON receipt)", "tags": ["portal"],
        "parameters": [openapi.path_parameter("consent_id", EXAMPLE_CONSENT_ID)],
        "responses": {"200": json_response("receipt", ReceiptView, {"active": openapi.example(
                          "the receipt of an active consent", _RECEIPT)}),
                      "303": {"description": "sign in first"},
                      "4XX": {"description": "HTML page explaining what to do",
                              "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    "/me/consents/{consent_id}/receipt.html": html_page("The receipt to read and print (what the signed record "
                                                        "says, in words)", path_param="consent_id"),
    "/me/consents/{consent_id}/withdraw": {
        **html_page("Confirm withdrawal", path_param="consent_id"),
        **html_page("Withdraw (after confirmation)", method="post", path_param="consent_id"),
    },
    "/me/templates/delete": {
        **html_page("Confirm deleting one's face and voice templates (names the consents that end with them)"),
        **html_page("Delete one's templates, ending the consents granted with them (after confirmation)",
                    method="post"),
    },
}
