"""merge the audit, consent and enforcement branches into one head

Revision ID: 0005_merge_heads
Revises: 0002_audit_log, 0003_consent, 0004_enforcement
Create Date: 2026-11-21 13:00:00
"""
from collections.abc import Sequence

revision: str = "0005_merge_heads"
down_revision: str | Sequence[str] | None = ("0002_audit_log", "0003_consent", "0004_enforcement")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The three features were developed side by side on top of the foundation; from here on the
    # history is linear again.
    pass


def downgrade() -> None:
    pass
