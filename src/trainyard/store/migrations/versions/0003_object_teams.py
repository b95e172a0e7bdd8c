"""datasets and models belong to a team (isolation); those made before are the `default` team's

Revision ID: 0003_object_teams
Revises: 0002_registry
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_object_teams"
down_revision = "0002_registry"
branch_labels = None
depends_on = None

TABLES = ("datasets", "models")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:  # the default fills the rows there are, then goes
            batch.add_column(sa.Column("team", sa.String(length=64), nullable=False, server_default="default"))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("team", server_default=None)
            batch.create_index(f"ix_{table}_team", ["team"])


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_team")
            batch.drop_column("team")
