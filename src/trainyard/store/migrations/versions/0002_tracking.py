"""tracking: metric points in columnar chunks; runs, params, tags, latest metrics, artifacts,
run events

Revision ID: 0002_tracking
Revises: 0001
"""

import itertools

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0002_tracking"
down_revision = "0001"
branch_labels = None
depends_on = None


def _pack(rows: list) -> dict:
    steps = np.array([r[2] for r in rows], dtype="<i8")
    return {"job_id": rows[0][0], "key": rows[0][1], "count": len(rows), "first_step": int(steps[0]),
            "last_step": int(steps[-1]), "steps": steps.tobytes(),
            "timestamps": np.array([r[3] for r in rows], dtype="<f8").tobytes(),
            "values": np.array([r[4] for r in rows], dtype="<f8").tobytes()}


def upgrade() -> None:
    # Points move from one row each into columnar chunks (one row per key per batch): a batch is
    # one row to write and a history a few rows to read. Existing points become one chunk per key.
    chunks = op.create_table(
        "metric_chunks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("steps", sa.LargeBinary(), nullable=False),
        sa.Column("timestamps", sa.LargeBinary(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_metric_chunks_run_key", "metric_chunks", ["job_id", "key", "id"])
    bind = op.get_bind()
    old = sa.table("metrics", *(sa.column(c) for c in ("id", "job_id", "key", "step", "timestamp", "value")))
    rows = bind.execute(sa.select(old.c.job_id, old.c.key, old.c.step, old.c.timestamp, old.c.value)
                        .order_by(old.c.job_id, old.c.key, old.c.step, old.c.id)).all()
    for _, series in itertools.groupby(rows, key=lambda r: (r[0], r[1])):
        bind.execute(chunks.insert(), [_pack(list(series))])
    with op.batch_alter_table("metrics") as batch_op:
        batch_op.drop_index("ix_metrics_job_key_step")
    op.drop_table("metrics")

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
    latest = sa.table("latest_metrics",
                      *(sa.column(c) for c in ("run_id", "key", "step", "timestamp", "value")))
    newest: dict = {}
    for r in rows:  # in step order per key: the last one seen is the newest
        newest[(r[0], r[1])] = {"run_id": r[0], "key": r[1], "step": r[2], "timestamp": r[3], "value": r[4]}
    if newest:
        bind.execute(latest.insert(), list(newest.values()))

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
        "metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_metrics_job_key_step", "metrics", ["job_id", "key", "step"])
    bind = op.get_bind()
    points = sa.table("metrics", *(sa.column(c) for c in ("job_id", "key", "step", "timestamp", "value")))
    for job_id, key, steps, stamps, values in bind.execute(sa.text(
            'SELECT job_id, "key", steps, timestamps, "values" FROM metric_chunks ORDER BY id')):
        rows = [{"job_id": job_id, "key": key, "step": int(s), "timestamp": float(t), "value": float(v)}
                for s, t, v in zip(np.frombuffer(steps, "<i8"), np.frombuffer(stamps, "<f8"),
                                   np.frombuffer(values, "<f8"), strict=True) if not np.isnan(v)]
        if rows:
            bind.execute(points.insert(), rows)
    op.drop_table("metric_chunks")
