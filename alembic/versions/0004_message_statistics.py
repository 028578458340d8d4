"""message statistics: a message's user follows from its conversation

Revision ID: 0004_message_statistics
Revises: 0003_turn_records

Statements are prepared once per connection and reused on PostgreSQL's own plan choice
(`plan_cache_mode = auto`), which may settle on a generic plan, made without the values.
A read of a conversation's messages is also scoped to its user (`messages.user_id`).
Taken as independent of the conversation, that condition made the planner expect about
one row in any conversation, for which a sort costs nothing: the generic plan of the
newest history page sorted all of a large conversation's messages (190 ms for 100,000)
where the index gives the page in order (0.4 ms). Extended statistics tell the planner
that the user follows from the conversation (tests/db/test_reused_plans.py).

PostgreSQL only: SQLite plans each statement as it comes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_message_statistics"
down_revision: str | None = "0003_turn_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATISTICS = "st_messages_conversation_user"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (dependencies)"
        " ON conversation_id, user_id FROM messages"
    )
    # gathered now (a sample: seconds even for millions of rows), not at autovacuum's
    # next analyze of the table
    op.execute("ANALYZE messages")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
