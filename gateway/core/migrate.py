"""Runs Alembic for the configured database; the only way the schema changes."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config


def _script_location() -> Path:
    """The Alembic scripts: inside the installed package (a wheel), else the checkout's migrations/."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "_migrations"
    return installed if (installed / "env.py").is_file() else package.parent / "migrations"


MIGRATIONS = _script_location()
# Alembic announces every plugin it sets up at INFO; an operator running init wants the migrations only.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would eat the % of URL-encoded passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raise if the models and the migrations disagree (alembic check)."""
    command.check(alembic_config(url))
