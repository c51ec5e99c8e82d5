"""Every module that declares gateway tables, so Alembic and tests see the whole metadata at once."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "gateway.core.models",
    "gateway.auth.models",
    "gateway.keys.models",
    "gateway.registry.models",
    "gateway.decisions.models",
    "gateway.biometrics.models",
    "gateway.consents.models",
)


def import_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
