"""the audit log: one row per state-changing API call, accepted or refused

Revision ID: 0004_audit
Revises: 0003_auth
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_audit"
down_revision = "0003_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("route", sa.String(length=256), nullable=False),
        sa.Column("object", sa.JSON(), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_audit_time", "audit", ["time"])
    op.create_index("ix_audit_team", "audit", ["team"])
    op.create_index("ix_audit_actor_id", "audit", ["actor", "id"])
    op.create_index("ix_audit_action_id", "audit", ["action", "id"])


def downgrade() -> None:
    op.drop_table("audit")
