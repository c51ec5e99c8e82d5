"""What the portal keeps per browser: locale, CSRF token, sign-in to ``/me`` and progress on consent screens.

State between steps lives in Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure behind
https), so any gateway process can serve any step; it holds ids and times only, never a contact
address. Only this module reads or writes that cookie.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import g, request, session

from consent.operations import DEFAULT_LOCALE, LOCALES
from gateway.consents.portal import Proof, Stage
from gateway.consents.services import SentCode
from gateway.core.clock import utcnow

# How long a proved contact stays proved in this browser: long enough to read the notice calmly,
# short enough that a shared computer does not stay signed in.
SIGN_IN_TTL = timedelta(minutes=30)
_MAX_PENDING_REQUESTS = 5


# --- locale, CSRF, caller -------------------------------------------------------------------------


def choose_locale(preferred: str | None = None) -> str:
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


def current_locale() -> str:
    """The locale this request's page was chosen in (or would be, without a hint)."""
    return str(g.get("portal_locale") or choose_locale())


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


class CsrfFailed(Exception):
    pass


def check_csrf() -> None:
    expected = session.get("csrf")
    presented = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise CsrfFailed


def client_ip() -> str:
    return request.remote_addr or "unknown"


def _seen(at: Any, now: datetime) -> bool:
    return isinstance(at, int | float) and now.timestamp() - at < SIGN_IN_TTL.total_seconds()


# --- progress on a consent screen (per request id) -------------------------------------------------


def pending(request_id: str) -> dict[str, Any]:
    states = session.get("creq")
    if not isinstance(states, dict):
        return {}
    state = states.get(request_id)
    return dict(state) if isinstance(state, dict) else {}


def set_pending(request_id: str, state: dict[str, Any]) -> None:
    states = session.get("creq")
    states = dict(states) if isinstance(states, dict) else {}
    states.pop(request_id, None)
    states[request_id] = state
    # Bounded: the cookie must stay small however many links someone opens.
    session["creq"] = dict(list(states.items())[-_MAX_PENDING_REQUESTS:])


def remember_code(request_id: str, code_id: str | None, masked_contact: str) -> None:
    set_pending(request_id, {"code": code_id, "masked": masked_contact})


def remember_proof(request_id: str, subject_id: str, authn: str, now: datetime) -> None:
    set_pending(request_id, {"sub": subject_id, "at": int(now.timestamp()), "authn": authn})


def forget_progress(request_id: str) -> None:
    set_pending(request_id, {})


def _verified_subject(state: dict[str, Any], now: datetime) -> str | None:
    sub = state.get("sub")
    return str(sub) if isinstance(sub, str) and _seen(state.get("at"), now) else None


def stage(state: dict[str, Any], now: datetime) -> Stage:
    """Which step this browser is at: the notice once the contact is proved, the code once one was sent."""
    if _verified_subject(state, now) is not None:
        return "notice"
    if state.get("code"):
        return "code"
    return "contact"


def sent_code(state: dict[str, Any]) -> str | None:
    code = state.get("code")
    return code if isinstance(code, str) else None


def proof(state: dict[str, Any], now: datetime) -> Proof | None:
    subject_id = _verified_subject(state, now)
    if subject_id is None:
        return None
    return Proof(subject_id=subject_id, authn=str(state.get("authn") or "otp"),
                 at=datetime.fromtimestamp(float(state.get("at") or now.timestamp()), tz=now.tzinfo))


# --- sign-in to /me ---------------------------------------------------------------------------------


def me(now: datetime | None = None) -> str | None:
    """The signed-in subject's id, while the sign-in is fresh."""
    state = session.get("me")
    if not isinstance(state, dict):
        return None
    sub = state.get("sub")
    return str(sub) if isinstance(sub, str) and _seen(state.get("at"), now or utcnow()) else None


def sign_in(subject_id: str, now: datetime) -> None:
    session["me"] = {"sub": subject_id, "at": int(now.timestamp())}
    session.pop("me_pending", None)
    # A new CSRF token from the moment of sign-in: whoever planted a cookie in this browser before
    # (session fixation) knows the old token, and must not be able to forge a signed-in withdrawal.
    session.pop("csrf", None)


def sign_out() -> None:
    session.pop("me", None)
    session.pop("me_pending", None)
    session.pop("creq", None)


def login_code() -> dict[str, Any] | None:
    """The sign-in code sent to this browser's person (its id and masked contact), if any."""
    state = session.get("me_pending")
    return state if isinstance(state, dict) else None


def remember_login_code(sent: SentCode) -> None:
    # An unknown contact gets a dead code id, so the next page looks the same either way.
    session["me_pending"] = {"code": sent.code_id or "otp_none", "masked": sent.masked_contact}


def forget_login_code() -> None:
    session.pop("me_pending", None)
