"""Rules for the redirect URIs an app may register (where subjects return after deciding)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# RFC 3986's characters (unreserved, reserved, percent escapes) and nothing else: a registered URI
# ends up in a Location header and in the portal's Content-Security-Policy, so line breaks, spaces,
# quotes or angle brackets must never get that far (urlsplit silently drops tabs and line breaks, so
# it cannot be the check).
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_DNS_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


def validate_redirect_uri(uri: str) -> str:
    if not _URI_CHARACTERS.fullmatch(uri):
        raise ValueError(f"redirect URI may only contain URI characters (RFC 3986): {uri!r}")
    parts = urlsplit(uri)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not loopback):
        raise ValueError(f"redirect URI must be https (http only for loopback): {uri}")
    if not parts.netloc or parts.fragment or parts.username or parts.password:
        raise ValueError(f"redirect URI needs a host and no fragment or credentials: {uri}")
    if not is_host(parts.hostname or ""):
        raise ValueError(f"redirect URI needs a DNS name or an IP address as its host: {uri}")
    return uri


def is_host(host: str) -> bool:
    """A DNS name or an IP address: what a URL we store and show may name as its host."""
    if _DNS_NAME.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
