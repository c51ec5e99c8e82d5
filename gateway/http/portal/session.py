"""What the portal keeps per browser: locale, CSRF token, sign-in to ``/me`` and progress on consent screens.

State between steps lives in Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure behind
https), so any gateway process can serve any step; it holds ids, times, random form tokens and the
masked contact (``a***@example.com``), never a contact address: a new code goes where the code id
it keeps went. Only this module reads or writes that cookie.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Request, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from consent.operations import DEFAULT_LOCALE, LOCALES
from gateway.biometrics.liveness import TURNS, new_challenge
from gateway.consents import sign_ins
from gateway.consents.portal import Proof, Stage
from gateway.consents.services import SentCode
from gateway.core.clock import utcnow
from gateway.core.db import db

# How long a proved contact stays proved in this browser: long enough to read the notice calmly,
# short enough that a shared computer does not stay signed in.
SIGN_IN_TTL = timedelta(minutes=30)
_MAX_PENDING_REQUESTS = 5


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, without building the signer for a request that has no cookie.

    Flask builds its signer (key derivation included) on every request before it looks for the
    cookie; an API call never carries one, and on the decision path that was a tenth of Flask's cost.
    A session first written in this request is signed when it is saved, as before.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


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


def liveness_challenge(request_id: str) -> tuple[str, ...]:
    """The head turns this browser is asked for on the request's consent screen (biometric liveness).

    Made once and kept with the request's progress (the signed cookie), so the page and the form that
    answers it agree; "start over" forgets it with the rest.
    """
    state = pending(request_id)
    kept = state.get("turns")
    if isinstance(kept, list) and len(kept) >= 2 and all(turn in TURNS for turn in kept):
        return tuple(kept)
    made = new_challenge()
    set_pending(request_id, {**state, "turns": list(made)})
    return made


def remember_code(request_id: str, code_id: str | None, masked_contact: str) -> None:
    # The attempt token survives a new code: a code form still open in another tab stays usable.
    kept = {k: v for k, v in pending(request_id).items() if k == _ATTEMPT}
    set_pending(request_id, {**kept, "code": code_id, "masked": masked_contact})


def remember_proof(request_id: str, subject_id: str, authn: str, now: datetime) -> None:
    # The masked contact stays, so that the notice can say whom the code proved ("not you?").
    # The attempt token stays too: the code form sent again (a double click) is then seen as sent before.
    kept = {k: v for k, v in pending(request_id).items() if k in ("masked", _ATTEMPT)}
    set_pending(request_id, {**kept, "sub": subject_id, "at": int(now.timestamp()), "authn": authn})


def forget_progress(request_id: str) -> None:
    set_pending(request_id, {})


def start_over(request_id: str) -> None:
    """Forget what this browser proved for the request ("not you?", "use another address").

    Whoever proved the contact here was also signed in to /me; the person now at the keyboard says
    they are someone else, so that sign-in ends too.
    """
    proved = pending(request_id).get("sub")
    forget_progress(request_id)
    signed_in = session.get("me")
    if isinstance(proved, str) and isinstance(signed_in, dict) and signed_in.get("sub") == proved:
        session.pop("me", None)


def masked_contact(state: dict[str, Any]) -> str | None:
    masked = state.get("masked")
    return masked if isinstance(masked, str) else None


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
    """The id of the latest code sent to this browser for the request (to check it, or send a new one)."""
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
    """The signed-in subject's id, while the sign-in is fresh and was not ended by signing out."""
    state = session.get("me")
    if not isinstance(state, dict):
        return None
    sub, sid = state.get("sub"), state.get("sid")
    if not isinstance(sub, str) or not _seen(state.get("at"), now or utcnow()):
        return None
    if isinstance(sid, str) and sign_ins.ended(db.session, sid):
        return None
    return sub


def sign_in(subject_id: str, now: datetime) -> None:
    # The sid names this sign-in, so that signing out can end it on the server as well.
    session["me"] = {"sub": subject_id, "at": int(now.timestamp()), "sid": secrets.token_urlsafe(24)}
    session.pop("me_pending", None)
    # A new CSRF token from the moment of sign-in: whoever planted a cookie in this browser before
    # (session fixation) knows the old token, and must not be able to forge a signed-in withdrawal.
    session.pop("csrf", None)


def sign_out(now: datetime) -> None:
    state = session.get("me")
    if isinstance(state, dict) and isinstance(state.get("sid"), str) and isinstance(state.get("at"), int | float):
        # Committed with the answer: a copy of this cookie (a shared phone, a saved request) is signed out too.
        sign_ins.end(db.session, state["sid"], now=now,
                     expires_at=datetime.fromtimestamp(state["at"], tz=now.tzinfo) + SIGN_IN_TTL)
    session.pop("me", None)
    session.pop("me_pending", None)
    session.pop("creq", None)


def login_code() -> dict[str, Any] | None:
    """The sign-in code sent to this browser's person (its id and masked contact), if any."""
    state = session.get("me_pending")
    return state if isinstance(state, dict) else None


def remember_login_code(sent: SentCode) -> None:
    # An unknown contact gets a dead code id, so the next page looks the same either way.
    kept = {k: v for k, v in _code_state(None).items() if k == _ATTEMPT}
    session["me_pending"] = {**kept, "code": sent.code_id or "otp_none", "masked": sent.masked_contact}


def forget_login_code() -> None:
    session.pop("me_pending", None)


# --- one-time code forms: attempts, refusals and what the next page says ------------------------------
#
# ``where`` is a consent request id, or None for the sign-in to /me. Each code form carries an attempt
# token; a form whose token was already spent is a resubmission (a reload of the page a wrong code
# answered, the back button, a double click) and is not checked again, so it does not cost an attempt.
# A form without a token is checked and counted as before: counting is the safe side.

_ATTEMPT = "try"
_SAID = "said"
_FLASH = "flash"
_SPENT = "spent"
# Refusals after which the code cannot work any more: the page offers a new code instead of Confirm.
_TERMINAL = frozenset({"code_attempts_exhausted", "code_expired", "code_used", "code_not_found"})


def _code_state(where: str | None) -> dict[str, Any]:
    if where is not None:
        return pending(where)
    state = session.get("me_pending")
    return dict(state) if isinstance(state, dict) else {}


def _set_code_state(where: str | None, state: dict[str, Any]) -> None:
    if where is not None:
        set_pending(where, state)
    else:
        session["me_pending"] = state


def attempt_token(where: str | None) -> str:
    """The token of the code form rendered now (made once, kept until an attempt spends it)."""
    state = _code_state(where)
    token = state.get(_ATTEMPT)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(12)
        _set_code_state(where, {**state, _ATTEMPT: token})
    return token


def fresh_attempt(where: str | None, presented: str | None) -> bool:
    """Whether to check the submitted code; a fresh form's token is spent now.

    False for a resubmitted form: the caller redirects to the page, which repeats the last answer once.
    """
    state = _code_state(where)
    current = state.get(_ATTEMPT)
    if presented and isinstance(current, str) and not hmac.compare_digest(presented.encode(), current.encode()):
        said = state.get(_SAID)
        _set_code_state(where, {**state, **({_FLASH: said} if isinstance(said, dict) else {})})
        return False
    _set_code_state(where, {**state, _ATTEMPT: secrets.token_urlsafe(12)})
    return True


def remember_refusal(where: str | None, code: str, attempts_left: int | None, *, final: bool = True) -> None:
    """What a rejected code was told, to repeat it on a resubmission; a dead code is marked spent.

    ``final=False`` never marks the code spent (the caller must not reveal that no code exists).
    """
    state = _code_state(where)
    spent = final and (code in _TERMINAL or attempts_left == 0)
    _set_code_state(where, {**state, _SAID: {"code": code, "left": attempts_left}, _SPENT: spent})


def take_flash(where: str | None) -> tuple[str, int | None] | None:
    """The answer to repeat on this page, once: (refusal code, attempts left)."""
    state = _code_state(where)
    flash = state.pop(_FLASH, None)
    if flash is None:
        return None
    _set_code_state(where, state)
    if not isinstance(flash, dict) or not isinstance(flash.get("code"), str):
        return None
    left = flash.get("left")
    return str(flash["code"]), left if isinstance(left, int) else None


def code_spent(where: str | None) -> bool:
    """Whether the code sent to this browser can no longer work (used up, expired, replaced)."""
    return bool(_code_state(where).get(_SPENT))
