"""Consent Gateway: the Flask application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask

__all__ = ["create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)

    from gateway.core import config

    config.load(app, test_config)

    from gateway.auditing import runner as audit_runner
    from gateway.auth import oauth
    from gateway.core import boundary, observability, problems
    from gateway.core.db import db
    from gateway.http import errors
    from gateway.keys import keyring

    observability.configure_logging(app.config["LOG_LEVEL"])
    db.init_app(app)
    keyring.init_app(app)
    oauth.init_app(app)
    problems.register(app, errors.problem_for)
    observability.init_app(app)
    boundary.init_app(app)
    audit_runner.init_app(app)

    # Blueprints are imported here, not at module level, so importing gateway never drags the
    # whole HTTP surface (and its imports of the domains) into the CLI or the tests' factories.
    from gateway.http import BLUEPRINTS

    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
