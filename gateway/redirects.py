"""Rules for the redirect URIs an app may register (where subjects return after deciding)."""

from __future__ import annotations

from urllib.parse import urlsplit


def validate_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not loopback):
        raise ValueError(f"redirect URI must be https (http only for loopback): {uri}")
    if not parts.netloc or parts.fragment or parts.username or parts.password:
        raise ValueError(f"redirect URI needs a host and no fragment or credentials: {uri}")
    return uri
