"""biometric binding: sealed templates, and the templates each consent was granted with

Revision ID: 0009_biometric_binding
Revises: 0008_audit_nodes
Create Date: 2026-12-01 01:00:00

``consents.bindings`` is nullable: consents granted before stay unbound (their records name no
template) and keep working as before.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_biometric_binding"
down_revision: str | Sequence[str] | None = "0008_audit_nodes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "biometric_templates",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_biometric_templates")),
    )
    op.create_index(op.f("ix_biometric_templates_subject_id"), "biometric_templates", ["subject_id"])
    op.create_index(op.f("ix_biometric_templates_sha256"), "biometric_templates", ["sha256"])
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bindings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("bindings")
    op.drop_index(op.f("ix_biometric_templates_sha256"), table_name="biometric_templates")
    op.drop_index(op.f("ix_biometric_templates_subject_id"), table_name="biometric_templates")
    op.drop_table("biometric_templates")
