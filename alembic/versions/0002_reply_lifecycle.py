"""reply lifecycle: message statuses as the contract names them, reply chunks, change
positions for conversationEvents

Revision ID: 0002_reply_lifecycle
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_reply_lifecycle"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = ("COMPLETE", "STREAMING", "INTERRUPTED", "FAILED")
NEW_STATUSES = ("STREAMING", "COMPLETED", "STOPPED", "FAILED")
RENAMED = {"COMPLETE": "COMPLETED", "INTERRUPTED": "STOPPED"}


def _status_type(values: Sequence[str]) -> sa.Enum:
    return sa.Enum(
        *values, name="message_status", native_enum=False, create_constraint=True, length=16
    )


def _change_statuses(old: Sequence[str], new: Sequence[str], renamed: dict[str, str]) -> None:
    # the CHECK constraint of the non-native enum goes first, the values change, then the
    # new constraint (batch mode rebuilds the table on SQLite)
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(op.f("ck_messages_message_status"), type_="check")
    for before, after in renamed.items():
        op.execute(
            sa.text("UPDATE messages SET status = :after WHERE status = :before").bindparams(
                before=before, after=after
            )
        )
    with op.batch_alter_table("messages") as batch:
        batch.alter_column(
            "status", existing_type=sa.String(16), type_=_status_type(new), existing_nullable=False
        )


def upgrade() -> None:
    _change_statuses(OLD_STATUSES, NEW_STATUSES, RENAMED)
    op.create_table(
        "reply_chunks",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("text_offset", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "tool_call",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_reply_chunks_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "sequence", name=op.f("pk_reply_chunks")),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("last_change_seq", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("change_seq", sa.Integer(), server_default="0", nullable=False))
        batch.create_index("ix_conversations_user_change_seq", ["user_id", "change_seq"])


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_user_change_seq")
        batch.drop_column("change_seq")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_change_seq")
    op.drop_table("reply_chunks")
    _change_statuses(
        NEW_STATUSES, OLD_STATUSES, {after: before for before, after in RENAMED.items()}
    )
