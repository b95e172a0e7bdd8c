"""runs belong to a team (isolation): a job's run is its job's team's; client runs made before are `default`'s

Revision ID: 0003_run_teams
Revises: 0002_tracking
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_run_teams"
down_revision = "0002_tracking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:  # the default fills the rows there are, then goes
        batch.add_column(sa.Column("team", sa.String(length=64), nullable=False, server_default="default"))
    runs = sa.table("runs", sa.column("id"), sa.column("source"), sa.column("team"))
    jobs = sa.table("jobs", sa.column("id"), sa.column("team"))
    job_team = sa.select(jobs.c.team).where(jobs.c.id == runs.c.id).scalar_subquery()
    op.execute(runs.update().where(runs.c.source == "job")  # (a job gone since keeps `default`)
               .values(team=sa.func.coalesce(job_team, "default")))
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("team", server_default=None)
        batch.create_index("ix_runs_team_created", ["team", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_team_created")
        batch.drop_column("team")
