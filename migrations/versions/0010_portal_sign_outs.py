"""portal: sign-ins to /me that were ended (sign-out holds on the server, not only in the cookie)

Revision ID: 0010_portal_sign_outs
Revises: 0009_biometric_binding
Create Date: 2026-12-02 03:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_portal_sign_outs"
down_revision: str | Sequence[str] | None = "0009_biometric_binding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_ended_sign_ins",
        sa.Column("sid", sa.String(length=43), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_portal_ended_sign_ins")),
    )
    op.create_index(op.f("ix_portal_ended_sign_ins_expires_at"), "portal_ended_sign_ins", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_portal_ended_sign_ins_expires_at"), table_name="portal_ended_sign_ins")
    op.drop_table("portal_ended_sign_ins")
