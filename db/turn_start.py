"""A turn's run and the history its model reads, in the unit of work that stored its
question: on PostgreSQL one statement (one round trip, where it took two).

The run's INSERT under the user's rate limit is a data-modifying CTE; when it made the
run, a lateral read gives the conversation's newest messages up to the question (stored
by an earlier statement of this transaction, so among them). That earlier statement
locked the user's row (`messages.store_exchange`), so this one's snapshot, taken after,
counts every run committed before the lock was granted. On SQLite, the two statements.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncSession

from db import agent_runs as run_queries
from db import driver
from db import messages as message_queries
from db.messages import HistoryLine
from db.models import Message


def _statement() -> driver.Kept:
    run = run_queries.start_run_under_limit_statement().cte("run")
    history = (
        message_queries.recent_history_statement("history_")
        .add_columns(Message.seq)
        .lateral("history")
    )
    return driver.Kept(
        select(run.c.id, history.c.role, history.c.content, history.c.tool_calls)
        .select_from(run)
        .outerjoin(history, true())
        .order_by(history.c.seq.desc())
    )


_START_ON_POSTGRES = _statement()


async def start_run_with_history(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    question_id: uuid.UUID,
    up_to_seq: int,
    since: datetime,
    limit: int,
    history_limit: int,
    run_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, list[HistoryLine]] | None:
    """The run (RUNNING from now) and the newest `history_limit` live messages up to
    `up_to_seq`, oldest first; `None` when the user started `limit` runs or more since
    `since` (nothing is written then)."""
    if session.get_bind().dialect.name != "postgresql":
        started = await run_queries.start_run_under_limit(
            session,
            user_id=user_id,
            conversation_id=conversation_id,
            user_message_id=question_id,
            since=since,
            limit=limit,
            run_id=run_id,
        )
        if started is None:
            return None
        lines = await message_queries.recent_history(
            session, conversation_id, history_limit, up_to_seq
        )
        return started.id, lines
    run = run_queries.new_run(user_id, conversation_id, question_id, run_id)
    values = {
        **run_queries.under_limit_values(run, since, limit),
        **message_queries.history_values(conversation_id, history_limit, up_to_seq, "history_"),
    }
    rows = await driver.rows(session, _START_ON_POSTGRES, values)
    if not rows:
        return None
    read = [row[1:] for row in rows if row[1] is not None]
    return run.id, message_queries.history_lines(read)
