"""in-flight indexes: the replies being written and the runs still running

Revision ID: 0005_in_flight_indexes
Revises: 0004_message_statistics

A turn ends FAILED any reply of its conversation still STREAMING, `activeReply` and
`stopReply` look for one, and a retried turn marks its question's runs still RUNNING.
Each of those read every message of the conversation (every run of every user), 215 ms
a turn in a conversation of 100,000 messages: the work of a turn grew with the
conversation. These partial indexes hold only the rows in flight, a few at any time
(tests/db/test_turn_statements_scale.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_in_flight_indexes"
down_revision: str | None = "0004_message_statistics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_streaming",
        "messages",
        ["conversation_id"],
        postgresql_where=sa.text("status = 'STREAMING'"),
        sqlite_where=sa.text("status = 'STREAMING'"),
    )
    op.create_index(
        "ix_agent_runs_running",
        "agent_runs",
        ["user_message_id"],
        postgresql_where=sa.text("status = 'RUNNING'"),
        sqlite_where=sa.text("status = 'RUNNING'"),
    )


def downgrade() -> None:
    op.drop_index("ix_agent_runs_running", table_name="agent_runs")
    op.drop_index("ix_messages_streaming", table_name="messages")
