"""each team's secrets, encrypted with the server's key (never stored here)

Revision ID: 0004_secrets
Revises: 0003_auth
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_secrets"
down_revision = "0003_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("team", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=128), primary_key=True),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("secrets")
