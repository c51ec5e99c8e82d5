"""HTTP blueprints. Each module owns its routes and their OpenAPI description (``PATHS``)."""

from __future__ import annotations

from types import ModuleType

from flask import Blueprint

from gateway.http import (
    algorithms_api,
    audit_api,
    clients_api,
    consent_api,
    decisions_api,
    edits_api,
    oauth_routes,
    ops,
    portal,
    well_known,
)


def _modules() -> list[ModuleType]:
    return [ops, oauth_routes, well_known, clients_api, algorithms_api, decisions_api, edits_api, consent_api,
            portal, audit_api]


MODULES: list[ModuleType] = _modules()
BLUEPRINTS: list[Blueprint] = [m.bp for m in MODULES]
