"""reply chunk pieces: consecutive pieces of a reply's text in one row

Revision ID: 0007_reply_chunk_pieces
Revises: 0006_listed_messages_index

A reply's stream was kept one row per piece: a reply streamed in 70 pieces wrote 70
rows (and their index entries) when it ended, 150 WAL records and 750 buffer hits of the
reply's end statement on the bench data. Pieces written together now share a row:
`pieces` holds their lengths (null: the row is one entry, as every row before this
revision is), `sequence` the last one's number, `text_offset` the first one's offset.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_reply_chunk_pieces"
down_revision: str | None = "0006_listed_messages_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "reply_chunks",
        sa.Column(
            "pieces", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
    )


#: each row of several pieces back as one row per piece (PostgreSQL: SQLite keeps its
#: streams in memory, its table has no such rows)
UNPACK = """
WITH packed AS (
    DELETE FROM reply_chunks WHERE pieces IS NOT NULL
    RETURNING message_id, sequence, text_offset, text, pieces
), piece AS (
    SELECT packed.message_id, packed.sequence, packed.text_offset, packed.text,
           jsonb_array_length(packed.pieces) AS count, p.ordinality AS n,
           p.value::int AS length,
           sum(p.value::int) OVER (
               PARTITION BY packed.message_id, packed.sequence ORDER BY p.ordinality
           )::int - p.value::int AS start
    FROM packed, jsonb_array_elements_text(packed.pieces) WITH ORDINALITY AS p(value, ordinality)
)
INSERT INTO reply_chunks (message_id, sequence, text_offset, text, tool_call)
SELECT message_id, sequence - count + n, text_offset + start,
       substr(text, start + 1, length), NULL
FROM piece
"""


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(UNPACK)
    with op.batch_alter_table("reply_chunks") as batch:
        batch.drop_column("pieces")
