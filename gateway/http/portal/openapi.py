"""The OpenAPI description of the portal: HTML pages, and the form posts behind them (each with its fields).

The forms are documented from the models below, so that clients and fuzzers know every field the views
read; a request that breaks them gets an HTML page explaining what to do (4XX), as people do.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from consent.operations import LOCALES, OPERATIONS
from gateway.http import openapi
from gateway.http.schemas import EXAMPLE_CONSENT_ID, EXAMPLE_REQUEST_ID

_HTML_SCHEMA = {"type": "string"}
# Pages are for people: the examples show the shape (a whole HTML document in the person's language).
_PAGE = ("<!doctype html>\n<html lang=\"en\">\n<head><title>Consent Gateway</title></head>\n<body>\n"
         "<main id=\"main\"><h1>{heading}</h1> …</main>\n</body>\n</html>")
_EXPLAINED = _PAGE.format(heading="The code is not right. 2 attempt(s) left.")
_CSRF_EXAMPLE = "ImM1ZjQ0NmQ0ZTk1YTQ0YjE2ZmE4In0.Z0rZbw.5xw1c0uV6X9Q"
# Session-bound: the token the page put in its form. Without it (or a stale one) the post is refused.
_CSRF = Field(min_length=1, max_length=200, description="the csrf_token of the page that showed the form")


class _Form(BaseModel):
    model_config = ConfigDict(extra="allow")  # a browser may send more; the views read only these

    csrf_token: str = _CSRF
    # What the page's form sends, for the document's request example.
    EXAMPLE: ClassVar[dict[str, Any]]


class CsrfForm(_Form):
    """A form with nothing to fill in: only its CSRF token (sign out, start over, withdraw)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"csrf_token": _CSRF_EXAMPLE}


class ContactForm(_Form):
    contact: str | None = Field(None, max_length=254,
                                description="email or +E.164 phone; left out to send a new code to the same "
                                            "address (on the consent screen)")

    EXAMPLE: ClassVar[dict[str, Any]] = {"csrf_token": _CSRF_EXAMPLE, "contact": "mei@example.com"}


class CodeForm(_Form):
    code: str = Field(max_length=32, description="the six-digit code from the message")
    attempt: str | None = Field(None, max_length=200,
                                description="the page's one-time attempt token: a form sent twice is not "
                                            "checked (or counted) twice")

    EXAMPLE: ClassVar[dict[str, Any]] = {"csrf_token": _CSRF_EXAMPLE, "code": "482913",
                                         "attempt": "q8V2m1lWk0c"}


class DecisionForm(_Form):
    action: Literal["approve", "decline"]
    operations: list[str] = Field(default_factory=list, json_schema_extra={"items": {"enum": list(OPERATIONS)}},
                                  description="each operation ticked separately (repeated field)")
    notice_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="the notice the person read")
    locale: str = Field(json_schema_extra={"enum": list(LOCALES)}, description="the language the notice was shown in")
    selfie: bytes | None = Field(
        None, json_schema_extra={"format": "binary"},
        description="a photo of the person's face, when face operations are ticked and face binding is on "
                    "(then the form is sent as multipart/form-data); only the template made from it is kept")

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "csrf_token": _CSRF_EXAMPLE, "action": "approve", "operations": ["face_swap"],
        "notice_sha256": "3f0c8b5d2e6a4f1b9c7d8e2a5b6c4d3e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c", "locale": "en"}


_PATH_EXAMPLES = {"request_id": EXAMPLE_REQUEST_ID, "consent_id": EXAMPLE_CONSENT_ID}


def html_page(summary: str, *, method: str = "get", path_param: str | None = None,
              form: type[_Form] | None = None) -> dict[str, Any]:
    page = {"text/html": openapi.media(_HTML_SCHEMA, {"page": openapi.example(summary, _PAGE.format(heading=summary))})}
    explained = {"text/html": openapi.media(_HTML_SCHEMA, {"explained": openapi.example(
        "what went wrong and what to do, in the person's language", _EXPLAINED)})}
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["portal"],
        "responses": {"200": {"description": "HTML page", "content": page},
                      "303": {"description": "next step (See Other)"},
                      "4XX": {"description": "HTML page explaining what to do", "content": explained}},
    }
    if method == "post":
        model = form or CsrfForm
        operation["requestBody"] = openapi.form_body(model, {"filled": openapi.example(
            "as the page's form sends it", model.EXAMPLE)})
    if path_param:
        operation["parameters"] = [openapi.path_parameter(path_param, _PATH_EXAMPLES[path_param])]
    return {method: operation}


def form_target(summary: str, *, back_to: str, path_param: str | None = None,
                form: type[_Form] | None = None) -> dict[str, Any]:
    """A form's target: POST does the step; GET (its address reopened from the address bar or history)
    answers 303 to the page the step belongs to, which shows where things stand."""
    return {**html_page(f"Opened as a page: 303 to {back_to}", path_param=path_param),
            **html_page(summary, method="post", path_param=path_param, form=form)}
