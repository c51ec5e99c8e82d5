"""The OpenAPI description of a portal page: HTML in, form posts with a CSRF token, 303 to the next step."""

from __future__ import annotations

from typing import Any

_HTML = {"text/html": {"schema": {"type": "string"}}}
_FORM = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}


def html_page(summary: str, *, method: str = "get", path_param: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["portal"],
        "responses": {"200": {"description": "HTML page", "content": _HTML},
                      "303": {"description": "next step (See Other)"},
                      "4XX": {"description": "HTML page explaining what to do", "content": _HTML}},
    }
    if method == "post":
        operation["requestBody"] = {"required": True, "content": _FORM,
                                    "description": "form fields, always with csrf_token"}
    if path_param:
        operation["parameters"] = [{"name": path_param, "in": "path", "required": True,
                                    "schema": {"type": "string"}}]
    return {method: operation}
