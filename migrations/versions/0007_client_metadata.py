"""clients: RFC 7591 metadata shown on the consent screen (home page, privacy policy, terms, logo)

Revision ID: 0007_client_metadata
Revises: 0006_audit_no_delete_escape
Create Date: 2026-11-30 21:30:00

Nullable columns: apps registered before keep working and show their name only.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_client_metadata"
down_revision: str | Sequence[str] | None = "0006_audit_no_delete_escape"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("client_uri", "policy_uri", "tos_uri", "logo_uri")


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        for name in _COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
