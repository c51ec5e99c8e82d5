"""How the portal renders: one page helper with the context every template needs, error pages, and times.

Times shown to people are written here and nowhere else (``shown_time``, ``shown_log_time``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Response, render_template, request

from consent import errors
from consent.operations import OPERATIONS
from gateway.consents.services import RateLimited
from gateway.http.portal.session import csrf_token, me
from gateway.i18n import translate


def page(template: str, locale: str, status: int = 200, **context: Any) -> tuple[str, int]:
    def t(key: str, **values: Any) -> str:
        return translate(locale, key, **values)

    html = render_template(
        f"portal/{template}", t=t, locale=locale, csrf_token=csrf_token(), op_label=lambda name: op_label(name, locale),
        when=shown_time, lang_url=lang_url, signed_in=me() is not None, **context,
    )
    return html, status


def error_page(locale: str, status: int, key: str, **values: Any) -> tuple[str, int]:
    return page("error.html", locale, status, message=translate(locale, key, **values))


def rate_limited(locale: str, exc: RateLimited) -> Response:
    minutes = max(1, (exc.retry_after + 59) // 60)
    html, status = error_page(locale, 429, "error.rate_limited", minutes=minutes)
    return Response(html, status=status, headers={"Retry-After": str(exc.retry_after)})


def code_error(locale: str, exc: errors.CodeRejected) -> str:
    """Why a one-time code was not accepted, in words (with the attempts left after a wrong one)."""
    if isinstance(exc, errors.WrongCode):
        return translate(locale, "error.code_invalid", left=exc.attempts_left)
    return translate(locale, f"error.{exc.code}")


def op_label(name: str, locale: str) -> str:
    return OPERATIONS[name].label(locale) if name in OPERATIONS else name


def shown_time(moment: datetime | None) -> str:
    """A time on a page, to the minute (``2026-11-30 20:41 UTC``)."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def shown_log_time(ts: object) -> str:
    """An audit entry's RFC 3339 ``ts`` on a page, to the second (``2026-11-30 20:41:54 UTC``)."""
    return str(ts)[:19].replace("T", " ") + " UTC"


def lang_url(lang: str) -> str:
    args = {k: v for k, v in request.args.items() if k != "lang"}
    return request.path + "?" + urlencode({**args, "lang": lang})
