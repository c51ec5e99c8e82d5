"""audit: no session setting lets a DELETE through the append-only trigger on PostgreSQL

Revision ID: 0006_audit_no_delete_escape
Revises: 0005_merge_heads
Create Date: 2026-11-21 13:35:00

Retention on PostgreSQL detaches and drops a month's partition (DDL, which row triggers never see), so
the trigger no longer needs the ``consent_gateway.purge_shard`` setting that let a DELETE through. Any
role can set a custom setting, so keeping it would leave only the DELETE privilege between an app role
and a rewrite of history.
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0006_audit_no_delete_escape"
down_revision: str | Sequence[str] | None = "0005_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STRICT = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: the audit log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$"""

_WITH_ESCAPE = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF TG_TABLE_NAME LIKE 'audit_entries%'
           AND current_setting('consent_gateway.purge_shard', true) = OLD.shard THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION '% on % refused: the audit log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_STRICT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_WITH_ESCAPE)
