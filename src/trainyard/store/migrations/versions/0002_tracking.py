"""tracking: metrics clustered by (run, key, step, timestamp); runs, params, tags, latest metrics,
artifacts, run events

Revision ID: 0002_tracking
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_tracking"
down_revision = "0001"
branch_labels = None
depends_on = None

POINT_KEY = ("job_id", "key", "step", "timestamp")


def _metrics_table(name: str) -> None:
    # Without a rowid on SQLite the primary key is the table: one b-tree to write, a history is
    # one range scan of it (no lookups back into a heap), and rows come out in step order.
    op.create_table(
        name,
        sa.Column("job_id", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(*POINT_KEY, name="pk_metrics"),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    _metrics_table("metrics_clustered")
    op.execute(
        "INSERT INTO metrics_clustered (job_id, key, step, timestamp, value) "
        "SELECT job_id, key, step, timestamp, value FROM metrics WHERE true "
        "ON CONFLICT (job_id, key, step, timestamp) DO UPDATE SET value = excluded.value"
    )
    with op.batch_alter_table("metrics") as batch_op:
        batch_op.drop_index("ix_metrics_job_key_step")
    op.drop_table("metrics")
    op.rename_table("metrics_clustered", "metrics")

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_project_experiment_created", "runs", ["project", "experiment", "created_at"])
    op.create_index("ix_runs_created", "runs", ["created_at"])

    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_index("ix_run_params_key_number", "run_params", ["key", "number"])

    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_index("ix_run_tags_key_value", "run_tags", ["key", "value"])

    op.create_table(
        "latest_metrics",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.execute(
        "INSERT INTO latest_metrics (run_id, key, step, timestamp, value) "
        "SELECT m.job_id, m.key, m.step, m.timestamp, m.value FROM metrics m "
        "WHERE NOT EXISTS (SELECT 1 FROM metrics n WHERE n.job_id = m.job_id AND n.key = m.key "
        "AND (n.step > m.step OR (n.step = m.step AND n.timestamp > m.timestamp)))"
    )

    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "path"),
    )

    op.create_table(
        "run_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_run_events_run_id", "run_events", ["run_id"])


def downgrade() -> None:
    op.drop_table("run_events")
    op.drop_table("run_artifacts")
    op.drop_table("latest_metrics")
    op.drop_table("run_tags")
    op.drop_table("run_params")
    op.drop_table("runs")
    op.create_table(
        "metrics_rowid",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO metrics_rowid (job_id, key, step, timestamp, value) "
        "SELECT job_id, key, step, timestamp, value FROM metrics WHERE value IS NOT NULL"
    )
    op.drop_table("metrics")
    op.rename_table("metrics_rowid", "metrics")
    op.create_index("ix_metrics_job_key_step", "metrics", ["job_id", "key", "step"])
