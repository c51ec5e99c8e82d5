"""``/``: what this service is, where to go next, and whether it is ready."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

from gateway.http import openapi
from gateway.keys import readiness

bp = Blueprint("home", __name__)


@bp.get("/")
def home() -> tuple[str, int]:
    state = readiness.check()
    return render_template("home.html", issuer=current_app.config["ISSUER"], ready=state.ready,
                           checks=state.checks), 200


_HOME = ("<!doctype html>\n<html lang=\"en\">\n<head><title>Consent Gateway</title></head>\n<body>\n<h1>Consent "
         "Gateway</h1>\n<p>Ready: database, signing key.</p>\n<ul><li><a href=\"/docs\">API reference</a></li> "
         "<li><a href=\"/me\">My consents</a></li> …</ul>\n</body>\n</html>")

PATHS: dict[str, Any] = {
    "/": {"get": {
        "summary": "The service's home page: what it is, links to the API reference, the portal, the keys "
                   "and the algorithm white list, and whether it is ready",
        "tags": ["ops"],
        "responses": {"200": {"description": "an HTML page", "content": {"text/html": openapi.media(
            {"type": "string"}, {"ready": openapi.example("a ready service", _HOME)})}}},
    }},
}
