"""The portal's blueprint, on its own so that every route module can import it without a cycle."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask.blueprints import BlueprintSetupState

from gateway.consents.notify import build as build_notifier
from gateway.core.config import ConfigError
from gateway.http.portal.session import CookieSessions

bp = Blueprint("portal", __name__)


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    app = state.app
    if isinstance(app, Flask):
        app.session_interface = CookieSessions()
    # A misconfigured notifier must stop the start, not the first person who asks for a code.
    try:
        build_notifier(str(app.config["NOTIFIER"]), str(app.config.get("WEBHOOK_SECRET", "")))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if str(app.config["ISSUER"]).startswith("https://"):
        # Behind https the session cookie never travels in clear text.
        app.config["SESSION_COOKIE_SECURE"] = True
