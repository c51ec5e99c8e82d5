"""The root of every error the gateway's own packages raise.

Like the domains' ``ConsentError`` and ``AuditError``, it carries no HTTP: ``code`` is the stable
machine code, and ``gateway.http.errors`` maps each class to a status once, at the edge.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    code: ClassVar[str] = "gateway_error"
