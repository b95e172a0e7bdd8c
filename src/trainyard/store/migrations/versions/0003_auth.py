"""users, memberships and API tokens; each attempt's own credential (its digest)

Revision ID: 0003_auth
Revises: 0002_scheduling
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_auth"
down_revision = "0002_scheduling"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("platform_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("team", sa.String(length=64), primary_key=True),
        sa.Column("user", sa.String(length=64), sa.ForeignKey("users.name"), primary_key=True),
        sa.Column("role", sa.String(length=16), nullable=False),
    )
    op.create_index("ix_memberships_user", "memberships", ["user"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=24), primary_key=True),
        sa.Column("digest", sa.String(length=64), nullable=False, unique=True),
        sa.Column("user", sa.String(length=64), sa.ForeignKey("users.name"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tokens_user", "tokens", ["user"])
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("token_digest", sa.String(length=64), nullable=True))
        batch.create_index("ix_attempts_token_digest", ["token_digest"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_index("ix_attempts_token_digest")
        batch.drop_column("token_digest")
    op.drop_table("tokens")
    op.drop_table("memberships")
    op.drop_table("users")
