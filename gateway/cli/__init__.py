"""The ``consent-gateway`` command: the root group with every command group added to it.

Command modules never import this package or each other; they define their groups and commands, and
only this module puts them together, so the CLI has no import cycle.
"""

from __future__ import annotations

from gateway.cli import algorithms, audit, clients, consents, demo, keys, labels
from gateway.cli.root import main

for _command in (
    clients.clients_group,
    keys.keys_group,
    algorithms.algorithms_group,
    demo.demo_upstream_command,
    audit.audit_group,
    audit.retention_group,
    consents.consents_group,
    labels.labels_group,
):
    main.add_command(_command)

__all__ = ["main"]
