"""User-facing strings of the portal and of code messages, in English and Simplified Chinese.

One JSON file per locale, with the same keys (a test checks it). Placeholders use ``str.format``
names; values are inserted as data and escaped by the templates, never interpreted.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from consent.operations import DEFAULT_LOCALE, LOCALES


@cache
def catalogue(locale: str) -> dict[str, str]:
    name = f"{locale if locale in LOCALES else DEFAULT_LOCALE}.json"
    loaded: dict[str, str] = json.loads(resources.files(__package__).joinpath(name).read_text("utf-8"))
    return loaded


def translate(locale: str, key: str, **values: Any) -> str:
    text = catalogue(locale).get(key) or catalogue(DEFAULT_LOCALE)[key]
    return text.format(**values) if values else text
