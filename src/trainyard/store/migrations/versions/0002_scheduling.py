"""teams, priority classes, and how an attempt is being stopped (cancel or preemption), and why

Revision ID: 0002_scheduling
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_scheduling"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("gpus", sa.Integer(), nullable=True),
        sa.Column("cpus", sa.Float(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("cohort", sa.String(length=64), nullable=True),
        sa.Column("borrowing_limit_gpus", sa.Integer(), nullable=True),
        sa.Column("borrowing_limit_cpus", sa.Float(), nullable=True),
    )
    op.create_table(
        "priority_classes",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("stop_kind", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("stop_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("stop_for", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("stop_sent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        for col in ("stop_sent_at", "stop_for", "stop_reason", "stop_kind"):
            batch.drop_column(col)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cancel_reason")
    op.drop_table("priority_classes")
    op.drop_table("teams")
