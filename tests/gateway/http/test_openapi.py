"""The OpenAPI document and the URL map describe the same routes."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

IGNORED_METHODS = {"HEAD", "OPTIONS"}
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


def flask_rule_to_path(rule: str) -> str:
    return _CONVERTER.sub(r"{\1}", rule)


def _routes(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in (rule.methods or set()) - IGNORED_METHODS:
            found.add((flask_rule_to_path(rule.rule), method.lower()))
    return found


def test_spec_is_valid_openapi_31(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_route_is_documented_and_nothing_else(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    routes = _routes(app)
    assert routes - documented == set(), "routes missing from /openapi.json"
    assert documented - routes == set(), "/openapi.json names routes that do not exist"


def test_docs_page_renders_every_path(client: FlaskClient) -> None:
    html = client.get("/docs").get_data(as_text=True)
    spec = client.get("/openapi.json").get_json()
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in html
