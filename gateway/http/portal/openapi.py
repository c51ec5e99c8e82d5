"""The OpenAPI description of the portal: HTML pages, and the form posts behind them (each with its fields).

The forms are documented from the models below, so that clients and fuzzers know every field the views
read; a request that breaks them gets an HTML page explaining what to do (4XX), as people do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from consent.operations import LOCALES, OPERATIONS
from gateway.http import openapi

_HTML = {"text/html": {"schema": {"type": "string"}}}
# Session-bound: the token the page put in its form. Without it (or a stale one) the post is refused.
_CSRF = Field(min_length=1, max_length=200, description="the csrf_token of the page that showed the form")


class _Form(BaseModel):
    model_config = ConfigDict(extra="allow")  # a browser may send more; the views read only these

    csrf_token: str = _CSRF


class CsrfForm(_Form):
    """A form with nothing to fill in: only its CSRF token (sign out, start over, withdraw)."""


class ContactForm(_Form):
    contact: str | None = Field(None, max_length=254,
                                description="email or +E.164 phone; left out to send a new code to the same "
                                            "address (on the consent screen)")


class CodeForm(_Form):
    code: str = Field(max_length=32, description="the six-digit code from the message")
    attempt: str | None = Field(None, max_length=200,
                                description="the page's one-time attempt token: a form sent twice is not "
                                            "checked (or counted) twice")


class DecisionForm(_Form):
    action: Literal["approve", "decline"]
    operations: list[str] = Field(default_factory=list, json_schema_extra={"items": {"enum": list(OPERATIONS)}},
                                  description="each operation ticked separately (repeated field)")
    notice_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="the notice the person read")
    locale: str = Field(json_schema_extra={"enum": list(LOCALES)}, description="the language the notice was shown in")


def html_page(summary: str, *, method: str = "get", path_param: str | None = None,
              form: type[BaseModel] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["portal"],
        "responses": {"200": {"description": "HTML page", "content": _HTML},
                      "303": {"description": "next step (See Other)"},
                      "4XX": {"description": "HTML page explaining what to do", "content": _HTML}},
    }
    if method == "post":
        operation["requestBody"] = openapi.form_body(form or CsrfForm)
    if path_param:
        operation["parameters"] = [{"name": path_param, "in": "path", "required": True,
                                    "schema": {"type": "string", "minLength": 1}}]
    return {method: operation}
