"""HTTP blueprints. Each module owns its routes and their OpenAPI description (``PATHS``)."""

from __future__ import annotations

from types import ModuleType

from flask import Blueprint

from gateway.http import home, oauth, ops, portal, well_known
from gateway.http.api import algorithms, audit, clients, consents, decisions, edits, labels, tiles


def _modules() -> list[ModuleType]:
    return [home, ops, oauth, well_known, clients, algorithms, decisions, edits, consents, portal, audit, labels, tiles]


MODULES: list[ModuleType] = _modules()
BLUEPRINTS: list[Blueprint] = [m.bp for m in MODULES]
