"""RFC 8785 (JCS) bytes of what we sign and hash, without rfc8785's pure-Python cost where it is not needed.

The same function lives in `consent.canonical`: the two domains import neither each other nor a shared
package, and both put JCS bytes on the decision path (here the audit entry, there the ticket).
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

__all__ = ["dumps"]


def dumps(value: Any) -> bytes:
    """``rfc8785.dumps(value)``, byte for byte, at a fifth of the cost for what we sign.

    For objects with ASCII member names holding strings, safe integers, booleans, null, arrays and
    such objects, RFC 8785's form is exactly ``json.dumps`` with sorted keys, no whitespace and UTF-8
    (members sort by UTF-16 code units, which for ASCII names is their code point order; strings are
    escaped the same way: the two-character escapes, ``\\u00xx`` in lowercase for other control
    characters, nothing else). Anything else (a float, a non-ASCII member name, a lone surrogate, an
    integer beyond 2**53) goes to rfc8785, which formats it or raises.
    """
    if _plain(value, _DEPTH):
        try:
            return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it with its own error
    return bytes(rfc8785.dumps(value))


_DEPTH = 32
_SAFE_INTEGER = 2**53 - 1


def _plain(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_SAFE_INTEGER <= value <= _SAFE_INTEGER)
    if depth == 0:
        return False
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v, depth - 1) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v, depth - 1) for v in value)
    return False
