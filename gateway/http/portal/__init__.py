"""The subject portal: the hosted consent screen (``/consent/…``) and self-service (``/me``).

Server-rendered HTML that works without JavaScript, in English and Simplified Chinese. The views
are thin (parse, call one service of ``gateway.consents.portal``, render); this package is only HTTP:

- ``blueprint``: the blueprint ``bp`` and its setup;
- ``session``: what the signed session cookie remembers (locale, CSRF token, sign-in, progress);
- ``pages``: rendering, error pages and the times shown to people;
- ``handlers``: errors as pages and the security headers, for every portal response;
- ``consent_screen`` and ``me``: the routes, each with its OpenAPI ``PATHS``;
- ``openapi``: how a portal page is described in OpenAPI.
"""

from __future__ import annotations

from typing import Any

# Importing the route and handler modules registers them on ``bp``.
from gateway.http.portal import consent_screen, handlers, me  # noqa: F401
from gateway.http.portal.blueprint import bp

__all__ = ["PATHS", "bp"]

PATHS: dict[str, Any] = {**consent_screen.PATHS, **me.PATHS}
