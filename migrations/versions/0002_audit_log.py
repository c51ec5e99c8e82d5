"""audit log: entries, shards, checkpoints, purges

Revision ID: 0002_audit_log
Revises: 0001_foundation
Create Date: 2026-11-21 11:56:24.311754
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002_audit_log'
down_revision: str | Sequence[str] | None = '0001_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('shard', sa.String(length=7), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('root', sa.LargeBinary(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints')),
    sa.UniqueConstraint('shard', 'size', name='uq_audit_checkpoints_shard_size')
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_shard'), ['shard'], unique=False)

    op.create_table('audit_entries',
    sa.Column('shard', sa.String(length=7), nullable=False),
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=True),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('consent_id', sa.String(length=64), nullable=True),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('leaf_hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('shard', 'seq', name=op.f('pk_audit_entries')),
    postgresql_partition_by='LIST (shard)'
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entries_action_ts', ['action', 'ts'], unique=False)
        batch_op.create_index('ix_audit_entries_client_id_ts', ['client_id', 'ts'], unique=False)
        batch_op.create_index('ix_audit_entries_subject_ts', ['subject', 'ts'], unique=False)
        batch_op.create_index('ix_audit_entries_ts', ['ts'], unique=False)

    op.create_table('audit_purge_permits',
    sa.Column('shard', sa.String(length=7), nullable=False),
    sa.PrimaryKeyConstraint('shard', name=op.f('pk_audit_purge_permits'))
    )
    op.create_table('audit_purges',
    sa.Column('shard', sa.String(length=7), nullable=False),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entry_count', sa.BigInteger(), nullable=False),
    sa.Column('final_checkpoint', sa.Text(), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('shard', name=op.f('pk_audit_purges'))
    )
    op.create_table('audit_shards',
    sa.Column('shard', sa.String(length=7), nullable=False),
    sa.Column('origin', sa.String(length=300), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('frontier', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checkpoint_size', sa.BigInteger(), nullable=False),
    sa.Column('checkpoint_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('shard', name=op.f('pk_audit_shards'))
    )
    _create_append_only_guards()


def downgrade() -> None:
    _drop_append_only_guards()
    op.drop_table('audit_shards')
    op.drop_table('audit_purges')
    op.drop_table('audit_purge_permits')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entries_ts')
        batch_op.drop_index('ix_audit_entries_subject_ts')
        batch_op.drop_index('ix_audit_entries_client_id_ts')
        batch_op.drop_index('ix_audit_entries_action_ts')

    op.drop_table('audit_entries')
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_checkpoints_shard'))

    op.drop_table('audit_checkpoints')


# Append-only, enforced by the database as well as detected by the hashes. The only deletions the
# triggers let through are a retention purge's: on SQLite while a permit row for that shard exists in
# the purge's own transaction, on PostgreSQL while the transaction-local setting names the shard (and
# normally the purge drops the shard's partition instead, which row triggers do not see).
_GUARDED = ("audit_entries", "audit_checkpoints", "audit_purges")

_SQLITE = [
    """CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
       BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END""",
    """CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
       WHEN NOT EXISTS (SELECT 1 FROM audit_purge_permits WHERE shard = OLD.shard)
       BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only outside a retention purge'); END""",
    """CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END""",
    """CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END""",
    """CREATE TRIGGER audit_purges_no_update BEFORE UPDATE ON audit_purges
       BEGIN SELECT RAISE(ABORT, 'audit_purges is append-only'); END""",
    """CREATE TRIGGER audit_purges_no_delete BEFORE DELETE ON audit_purges
       BEGIN SELECT RAISE(ABORT, 'audit_purges is append-only'); END""",
    """CREATE TRIGGER audit_queue_no_update BEFORE UPDATE ON audit_queue
       BEGIN SELECT RAISE(ABORT, 'audit_queue entries are immutable'); END""",
]

_PG_FUNCTION = """
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


def _create_append_only_guards() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)
        return
    op.execute(_PG_FUNCTION)
    for table in _GUARDED:
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")
    op.execute("CREATE TRIGGER audit_queue_immutable BEFORE UPDATE ON audit_queue "
               "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")


def _drop_append_only_guards() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE:
            name = statement.split()[2]
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        return
    op.execute("DROP TRIGGER IF EXISTS audit_queue_immutable ON audit_queue")
    for table in _GUARDED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.execute("DROP FUNCTION IF EXISTS audit_append_only() CASCADE")
