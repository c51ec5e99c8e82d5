"""Blueprint-wide handlers: anything raised becomes an error page; every response gets the security headers."""

from __future__ import annotations

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from gateway.consents.notify import NotificationFailed
from gateway.core.problems import answer_problem, to_problem
from gateway.http.portal.blueprint import bp
from gateway.http.portal.pages import error_page
from gateway.http.portal.session import CsrfFailed, current_locale

_ERROR_KEYS: dict[str, str] = {
    "consent_request_not_found": "error.not_found",
    "consent_not_found": "error.not_found",
    "not_found": "error.not_found",
    "subject_mismatch": "error.subject_mismatch",
    "payload_too_large": "error.too_large",
}


@bp.errorhandler(Exception)
def _portal_error(exc: Exception) -> tuple[str, int]:
    # Like gateway.core.problems' handler (roll back, remember the code for the logs), but as a page.
    g.failed = True
    locale = current_locale()
    if isinstance(exc, CsrfFailed):
        return error_page(locale, 403, "error.csrf")
    if isinstance(exc, NotificationFailed):
        current_app.logger.error("code delivery failed: %s", exc)
        return error_page(locale, 503, "error.send_failed")
    problem = to_problem(exc)
    if problem.status >= 500:
        g.problem_code = problem.code
        return error_page(locale, problem.status, "error.unavailable")
    return error_page(locale, problem.status, _ERROR_KEYS.get(problem.code, "error.generic"))


def _is_portal_path(path: str) -> bool:
    return path == "/me" or path.startswith(("/me/", "/consent/"))


@bp.app_errorhandler(NotFound)
@bp.app_errorhandler(MethodNotAllowed)
def _routing_error(exc: HTTPException) -> Response:
    """A URL under the portal that matches no page, or the wrong method for one, is a page too.

    Routing fails before any blueprint is chosen, so the portal's own handler never sees these; a
    person following a stale link or reloading a form target gets the portal's page, not JSON.
    """
    if not _is_portal_path(request.path):
        return answer_problem(exc)  # what the app answers everywhere else
    html, status = _portal_error(exc)
    response = current_app.make_response((html, status))
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return _security_headers(response)


@bp.after_request
def _security_headers(response: Response) -> Response:
    form_action = " ".join(filter(None, ["'self'", g.get("form_action_extra")]))
    # The app's registered logo is the only outside resource, and only its own origin is let in.
    img_src = " ".join(filter(None, ["'self'", g.get("img_src_extra")]))
    # Pages that show times load one script of ours (the local time beside UTC); the others run none.
    script = "script-src 'self'; " if g.get("portal_script") else ""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; {script}style-src 'self'; img-src {img_src}; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action {form_action}"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Consent URLs are capabilities of a kind: never leak them to another site in a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
