"""How the portal renders: one page helper with the context every template needs, error pages, and times.

Times shown to people are written here and nowhere else (``shown_time``, ``shown_log_time``): in UTC,
inside a ``<time datetime>`` element that ``static/portal.js`` completes with the reader's local time
(without JavaScript the UTC time stays).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Response, g, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import BuildError

from consent import errors
from consent.operations import OPERATIONS
from gateway.consents.services import RateLimited
from gateway.core.times import format_time, parse_time
from gateway.http.portal.session import csrf_token, me
from gateway.i18n import translate

# Pages that show times, and so load the script that adds the local time (their CSP allows it).
_TIMED_PAGES = frozenset({"me.html", "consent.html", "receipt.html", "templates_delete.html"})


def page(template: str, locale: str, status: int = 200, **context: Any) -> tuple[str, int]:
    def t(key: str, **values: Any) -> str:
        if any(isinstance(value, Markup) for value in values.values()):
            # A value that is already HTML (a <time> from ``when``) stays HTML; the text and every
            # other value are escaped as usual.
            return Markup.escape(translate(locale, key)).format(**values)
        return translate(locale, key, **values)

    def t_or(key: str, default: object) -> str:
        """A translation of a value that comes from a record (a code this version may not know)."""
        try:
            return translate(locale, key)
        except KeyError:
            return str(default)

    local_times = template in _TIMED_PAGES
    # The script also offers the desktop webcam for the selfie (phones open the camera without it).
    scripted = local_times or bool(context.get("selfie_for"))
    if scripted:
        g.portal_script = True
    html = render_template(
        f"portal/{template}", t=t, t_or=t_or, locale=locale, csrf_token=csrf_token(),
        op_label=lambda name: op_label(name, locale),
        ops=lambda names: listed(locale, [op_label(n, locale) for n in names]), when=shown_time,
        lang_url=lang_url, signed_in=_signed_in(), local_times=local_times, scripted=scripted, **context,
    )
    return html, status


def _signed_in() -> bool:
    """Whether the page shows "sign out": every page asks, error pages too, so a database that cannot
    say (it is why the page is an error) reads as not signed in rather than failing the page itself."""
    try:
        return me() is not None
    except SQLAlchemyError:
        return False


def error_page(locale: str, status: int, key: str, **values: Any) -> tuple[str, int]:
    return page("error.html", locale, status, message=translate(locale, key, **values))


def rate_limited(locale: str, exc: RateLimited, *, back: str | None = None) -> Response:
    """Too many attempts: when to try again, and (``back``) the page to try again from."""
    minutes = max(1, (exc.retry_after + 59) // 60)
    message = translate(locale, "error.rate_limited.one" if minutes == 1 else "error.rate_limited", minutes=minutes)
    html, status = page("error.html", locale, 429, message=message, back=back)
    return Response(html, status=status, headers={"Retry-After": str(exc.retry_after)})


def code_error(locale: str, exc: errors.CodeRejected) -> str:
    """Why a one-time code was not accepted, in words (with the attempts left after a wrong one)."""
    return code_message(locale, exc.code, exc.attempts_left if isinstance(exc, errors.WrongCode) else None)


def code_message(locale: str, code: str, attempts_left: int | None) -> str:
    if code == errors.WrongCode.code and attempts_left is not None:
        if attempts_left <= 0:
            # The code cannot work any more: say so plainly rather than "0 attempts left" and a Confirm button.
            return translate(locale, "error.code_used_up")
        return translate(locale, "error.code_invalid.one" if attempts_left == 1 else "error.code_invalid",
                         left=attempts_left)
    return translate(locale, f"error.{code}")


def op_label(name: str, locale: str) -> str:
    return OPERATIONS[name].label(locale) if name in OPERATIONS else name


def listed(locale: str, items: list[str]) -> str:
    """Items in a sentence: "a, b" in English, "甲、乙" in Chinese."""
    return translate(locale, "sep.list").join(items)


def shown_time(moment: datetime | None) -> Markup:
    """A time on a page, to the minute (``2026-11-30 20:41 UTC``), as a ``<time>`` element."""
    if moment is None:
        return Markup("")
    moment = moment.astimezone(UTC).replace(microsecond=0)
    return Markup('<time datetime="{}">{}</time>').format(format_time(moment), moment.strftime("%Y-%m-%d %H:%M UTC"))


def shown_log_time(ts: object) -> Markup:
    """An audit entry's RFC 3339 ``ts`` on a page, to the second (``2026-11-30 20:41:54 UTC``)."""
    try:
        moment = parse_time(str(ts)).replace(microsecond=0)
    except ValueError:
        return Markup("{}").format(ts)
    return Markup('<time datetime="{}" data-seconds>{}</time>').format(
        format_time(moment), moment.strftime("%Y-%m-%d %H:%M:%S UTC"))


def shown_epoch(seconds: object) -> Markup:
    """A NumericDate of a signed record (seconds since 1970, UTC) on a page."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return Markup("")
    return shown_log_time(format_time(datetime.fromtimestamp(seconds, tz=UTC)))


# The page a form posts from, for each form target: the language link of the answer to a POST must
# lead to a page (GET), never back to the form target (which only accepts POST).
_PAGE_OF_FORM = {
    "portal.consent_code": "portal.consent_screen",
    "portal.consent_verify": "portal.consent_screen",
    "portal.consent_decision": "portal.consent_screen",
    "portal.consent_start_over": "portal.consent_screen",
    "portal.me_code": "portal.me",
    "portal.me_verify": "portal.me",
    "portal.me_logout": "portal.me",
    "portal.me_withdraw": "portal.me_consent",
}


def lang_url(lang: str) -> str:
    """This page in another language: its GET URL with ``lang`` (for the answer to a POST too)."""
    if request.method in ("GET", "HEAD"):
        args = {k: v for k, v in request.args.items() if k != "lang"}
        return request.path + "?" + urlencode({**args, "lang": lang})
    endpoint = _PAGE_OF_FORM.get(request.endpoint or "", "portal.me")
    try:
        path = url_for(endpoint, **(request.view_args or {}))
    except BuildError:
        path = url_for("portal.me")
    return path + "?" + urlencode({"lang": lang})


def origin(uri: str | None) -> str | None:
    """``https://host[:port]`` of a registered URI (for the Content-Security-Policy), or None."""
    if not uri:
        return None
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"
