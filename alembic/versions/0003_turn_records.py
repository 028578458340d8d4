"""turn records: usage on runs, task provenance, reply feedback

Revision ID: 0003_turn_records
Revises: 0001

Self-contained: it only adds (columns on agent_runs, two tables), so it can follow any
revision that leaves agent_runs, messages, tasks and users in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0003_turn_records"
down_revision: str | None = "0002_reply_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agent_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("model", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("prompt_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("completion_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "usage_estimated", sa.Boolean(), server_default=sa.text("false"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("latency_ms", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_agent_runs_reply_id_messages"),
            "messages",
            ["reply_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_agent_runs_reply_id", ["reply_id"], unique=False)

    op.create_table(
        "task_effects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("tool_call_id", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "CREATED",
                "UPDATED",
                "COMPLETED",
                name="effect_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_task_effects_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_effects_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_task_effects_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_effects")),
        sa.UniqueConstraint(
            "message_id", "tool_call_id", name=op.f("uq_task_effects_message_id_tool_call_id")
        ),
    )
    with op.batch_alter_table("task_effects", schema=None) as batch_op:
        batch_op.create_index("ix_task_effects_task_id", ["task_id"], unique=False)

    op.create_table(
        "reply_feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column(
            "rating",
            sa.Enum(
                "UP", "DOWN", name="rating", native_enum=False, create_constraint=True, length=16
            ),
            nullable=False,
        ),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_reply_feedback_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_reply_feedback_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_feedback")),
        sa.UniqueConstraint(
            "message_id", "user_id", name=op.f("uq_reply_feedback_message_id_user_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("reply_feedback")
    with op.batch_alter_table("task_effects", schema=None) as batch_op:
        batch_op.drop_index("ix_task_effects_task_id")
    op.drop_table("task_effects")
    with op.batch_alter_table("agent_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_runs_reply_id")
        batch_op.drop_constraint(batch_op.f("fk_agent_runs_reply_id_messages"), type_="foreignkey")
        batch_op.drop_column("latency_ms")
        batch_op.drop_column("usage_estimated")
        batch_op.drop_column("completion_tokens")
        batch_op.drop_column("prompt_tokens")
        batch_op.drop_column("model")
        batch_op.drop_column("reply_id")
