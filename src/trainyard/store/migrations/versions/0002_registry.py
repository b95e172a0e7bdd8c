"""datasets, dataset_versions, run_lineage, models, model_versions, model_aliases, model_events

Revision ID: 0002_registry
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_registry"
down_revision = "0001"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        _when("created_at"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_datasets_project", "datasets", ["project"])
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _when("created_at"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["dataset"], ["datasets.name"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dataset_versions_name_version", "dataset_versions", ["dataset", "version"], unique=True)
    op.create_table(
        "run_lineage",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("dataset", sa.String(length=80), nullable=True),
        sa.Column("dataset_digest", sa.String(length=80), nullable=True),
        sa.Column("python", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=255), nullable=False),
        sa.Column("packages", sa.JSON(), nullable=False),
        sa.Column("rerun_of", sa.String(length=80), nullable=True),
        _when("recorded_at"),
        sa.ForeignKeyConstraint(["run_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=True),
        sa.Column("code_digest", sa.String(length=80), nullable=True),
        sa.Column("code_git_commit", sa.String(length=64), nullable=True),
        sa.Column("code_git_dirty", sa.Boolean(), nullable=True),
        _when("created_at"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_models_project", "models", ["project"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("checkpoint_step", sa.Integer(), nullable=False),
        sa.Column("checkpoint_uri", sa.Text(), nullable=False),
        sa.Column("checkpoint_metrics", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("eval_state", sa.String(length=16), nullable=False),
        sa.Column("eval_job_id", sa.String(length=80), nullable=True),
        sa.Column("eval_metrics", sa.JSON(), nullable=False),
        sa.Column("eval_reason", sa.Text(), nullable=False),
        _when("created_at"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["models.name"]),
        sa.ForeignKeyConstraint(["run_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_model_versions_model_version", "model_versions", ["model", "version"], unique=True)
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"])
    op.create_table(
        "model_aliases",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _when("updated_at"),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["models.name"]),
        sa.PrimaryKeyConstraint("model", "alias"),
    )
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=True),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _when("time"),
        sa.ForeignKeyConstraint(["model"], ["models.name"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_model_events_model_id", "model_events", ["model", "id"])


def downgrade() -> None:
    for table in ("model_events", "model_aliases", "model_versions", "models", "run_lineage",
                  "dataset_versions", "datasets"):
        op.drop_table(table)
