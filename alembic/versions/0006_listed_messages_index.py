"""listed messages index: a conversation's finished, live messages in order

Revision ID: 0006_listed_messages_index
Revises: 0005_in_flight_indexes

`messageCount`, `lastMessage` and the history pages read only a conversation's listed
messages (not deleted, COMPLETED or STOPPED). Through the (conversation, seq) index they
read every message's row to test those conditions. A partial index of the listed ones,
with their user (the reads are scoped to it), answers a count from the index alone and
gives the newest messages in order with nothing to skip: a conversation page costs
PostgreSQL about 250 µs of CPU instead of 390 on the bench data.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_listed_messages_index"
down_revision: str | None = "0005_in_flight_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTED = "deleted_at IS NULL AND status IN ('COMPLETED', 'STOPPED')"


def upgrade() -> None:
    op.create_index(
        "ix_messages_listed",
        "messages",
        ["conversation_id", "seq"],
        postgresql_include=["user_id"],
        postgresql_where=sa.text(LISTED),
        sqlite_where=sa.text(LISTED),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_listed", table_name="messages")
