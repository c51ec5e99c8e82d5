"""The fast JCS path gives rfc8785's bytes, or rfc8785's own answer (bytes or error), for any JSON value.

Both domains carry the function (``consent.canonical`` for tickets and records, ``audit.canonical`` for
audit entries); both are held to rfc8785 here.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import canonical as audit_canonical
from consent import canonical as consent_canonical

MODULES = [consent_canonical, audit_canonical]

# Every code point, surrogates included (a lone surrogate has no UTF-8 form: both must refuse it).
text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=12)
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | text | st.floats()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                      max_leaves=20)


def _rfc8785(value: Any) -> bytes | type[Exception]:
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as error:  # rfc8785 raises both
        return type(error)


def _ours(module: ModuleType, value: Any) -> bytes | type[Exception]:
    try:
        result: bytes = module.dumps(value)
        return result
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as error:  # rfc8785 raises both
        return type(error)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
@settings(max_examples=400, deadline=None)
@given(value=values)
def test_same_bytes_or_same_refusal_as_rfc8785(module: ModuleType, value: Any) -> None:
    assert _ours(module, value) == _rfc8785(value)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("value", [
    {"b": 1, "a": [True, None, "\u2028\x7f\x00\x1f\b\f\n\r\t\"\\"], "ä": "é"},  # non-ASCII name: rfc8785's order
    {"\U0001f600": 1, "\uffff": 2},  # UTF-16 order differs from code point order here
    {"n": 2**53 - 1, "m": -(2**53) + 1},
    {"too big": 2**53},
    {"float": 1.5e-7},
    {"lone": "\ud800"},
    ("a", ["b", ("c",)]),
])
def test_edge_cases(module: ModuleType, value: Any) -> None:
    assert _ours(module, value) == _rfc8785(value)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_an_audit_entry_is_the_plain_serialisation(module: ModuleType) -> None:
    entry = {"action": "decision.allowed", "actor": {"type": "app", "id": "cli_x"}, "consents": ["con_1"],
             "media": {"source": "ab" * 32}, "ts": "2026-12-01T00:00:00.000000Z", "detail": {"名前": "张三"}}
    assert module.dumps(entry) == rfc8785.dumps(entry)
