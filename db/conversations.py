"""Queries on conversations; every one is scoped to its owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Update,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from db import driver
from db.models import Conversation, ConversationStatus, Message, User, is_listed, is_streaming
from db.pagination import ListSpec, Page, Window, fetch_page
from db.types import utcnow

#: most recently updated first
CONVERSATIONS = ListSpec.of(
    "conversations", Conversation.updated_at, Conversation.id, descending=True
)


def listed_filters(with_search: bool) -> list[ColumnElement[bool]]:
    """Which conversations the list shows, with bind parameters `user_id`, `status` (and
    `search`)."""
    filters = [
        Conversation.user_id == bindparam("user_id"),
        Conversation.status == bindparam("status"),
        Conversation.deleted_at.is_(None),
    ]
    if with_search:
        term = bindparam("search", type_=String)
        in_messages = exists().where(
            Message.conversation_id == Conversation.id,
            Message.deleted_at.is_(None),
            is_listed(Message.status),
            Message.content.icontains(term, escape=LIKE_ESCAPE),
        )
        filters.append(Conversation.title.icontains(term, escape=LIKE_ESCAPE) | in_messages)
    return filters


def _listed(with_search: bool) -> Select[Conversation]:
    """The list's select (`listed_filters`)."""
    return (
        select(Conversation)
        # the list never shows metadata: don't fetch it (and fail loudly if read)
        .options(defer(Conversation.meta, raiseload=True))
        .where(*listed_filters(with_search))
    )


def list_params(
    user_id: uuid.UUID, status: ConversationStatus, search: str | None
) -> dict[str, object]:
    params: dict[str, object] = {"user_id": user_id, "status": status}
    if search:
        params["search"] = _like_literal(search)
    return params


LIKE_ESCAPE = "/"


def _like_literal(text: str) -> str:
    """`text` matched as it is inside LIKE: its wildcards escaped (what `autoescape`
    does for a literal value; the term here is a bind parameter)."""
    return (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


#: the count of each form of the list, built once
_COUNTS = {
    with_search: select(func.count()).select_from(
        _listed(with_search).with_only_columns(Conversation.id).subquery()
    )
    for with_search in (False, True)
}


async def list_conversations(
    session: AsyncSession,
    user_id: uuid.UUID,
    status: ConversationStatus,
    search: str | None,
    window: Window,
) -> Page[Conversation]:
    with_search = bool(search)
    return await fetch_page(
        session,
        ("conversations", with_search),
        lambda: _listed(with_search),
        list_params(user_id, status, search),
        CONVERSATIONS,
        window,
    )


async def count_conversations(
    session: AsyncSession, user_id: uuid.UUID, status: ConversationStatus, search: str | None
) -> int:
    count = await session.scalar(_COUNTS[bool(search)], list_params(user_id, status, search))
    return int(count or 0)


async def get_conversation(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    return await session.scalar(
        select(Conversation)
        .where(
            Conversation.id == conversation_id,
            Conversation.user_id == user_id,
            Conversation.deleted_at.is_(None),
        )
        # fresh even in a session that loaded it before (a turn's, after its units)
        .execution_options(populate_existing=True)
    )


_BY_IDS = select(Conversation).where(
    Conversation.id.in_(bindparam("ids", expanding=True)),
    Conversation.user_id == bindparam("user_id"),
    Conversation.deleted_at.is_(None),
)


async def get_conversations(
    session: AsyncSession, user_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
) -> list[Conversation]:
    rows = await session.scalars(_BY_IDS, {"ids": list(conversation_ids), "user_id": user_id})
    return list(rows)


async def add_conversation(
    session: AsyncSession,
    user_id: uuid.UUID,
    title: str,
    *,
    conversation_id: uuid.UUID | None = None,
) -> Conversation:
    now = utcnow()
    conversation = Conversation(
        id=conversation_id or uuid.uuid4(),
        user_id=user_id,
        title=title,
        status=ConversationStatus.ACTIVE,
        meta={},
        last_seq=0,
        created_at=now,
        updated_at=now,
    )
    session.add(conversation)
    await session.flush()
    return conversation


async def next_message_seq(
    session: AsyncSession, conversation_id: uuid.UUID, now: datetime
) -> int | None:
    """Claims the next message position and bumps `updated_at`, atomically; `None` if the
    conversation was deleted meanwhile (the UPDATE re-checks that after any lock wait)."""
    seq = await session.scalar(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.deleted_at.is_(None))
        .values(last_seq=Conversation.last_seq + 1, updated_at=now)
        .returning(Conversation.last_seq)
    )
    return None if seq is None else int(seq)


_CONVERSATIONS = driver.Loader(Conversation)


def _change(position: Any, *, streaming: bool = False) -> driver.Kept:
    """The conversation's change: `position` is its new `change_seq`. `streaming`: the
    row comes with whether a reply of the conversation is still STREAMING (read off the
    index of those: a probe, whatever the conversation's size)."""
    returned: list[Any] = list(_CONVERSATIONS.columns)
    if streaming:
        returned.append(
            exists(
                # by the bound id, not correlated: SQLite's RETURNING names columns
                # unqualified, where `id` would mean the message's
                select(literal_column("1")).where(
                    Message.conversation_id == bindparam("b_conversation_id"),
                    is_streaming(Message.status),
                )
            ).label("streaming")
        )
    return driver.Kept(
        update(Conversation)
        .where(
            Conversation.id == bindparam("b_conversation_id"),
            Conversation.user_id == bindparam("b_user_id"),
            Conversation.deleted_at.is_(None),
        )
        .values(
            change_seq=position,
            updated_at=bindparam("b_now"),
            last_seq=Conversation.last_seq + bindparam("b_new_messages", type_=Integer),
        )
        .returning(*returned)
    )


#: the user's next change position, taken (the user's row locked until the end)
_TAKE_NEXT_POSITION = (
    update(User)
    .where(User.id == bindparam("b_user_id"))
    .values(last_change_seq=User.last_change_seq + 1)
    .returning(User.last_change_seq)
)

#: PostgreSQL: both rows in one statement (one round trip). The users UPDATE runs first:
#: the SET's subquery needs its row, so the user's row is locked before the
#: conversation's is (one lock order, as everywhere), and it runs whether or not the
#: conversation matches (as the statement of its own would). SQLite: the user's next
#: position (its own statement, `_NEXT_CHANGE_POSITION`) bound in. Built once each, by
#: (dialect is PostgreSQL, with the STREAMING flag).
_NEXT_POSITION = _TAKE_NEXT_POSITION.cte("next_position")
_CHANGES = {
    (on_postgres, streaming): _change(
        select(_NEXT_POSITION.c.last_change_seq).scalar_subquery()
        if on_postgres
        else bindparam("b_position", type_=Integer),
        streaming=streaming,
    )
    for on_postgres in (False, True)
    for streaming in (False, True)
}


async def change_conversation(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID, *, new_messages: int = 0
) -> Conversation | None:
    """A change of a live conversation of the user's: the user's next change position
    (as `record_change`, the user's row first), a new `updated_at`, and `new_messages`
    message positions claimed (the last of them is the returned row's `last_seq`). The
    conversation as it is now (the session's copy too); `None` if it is gone or not the
    user's (re-checked after any lock wait), and nothing is changed then but the user's
    position, which the caller's rollback takes back."""
    found = await _changed_row(session, user_id, conversation_id, new_messages, streaming=False)
    return None if found is None else _CONVERSATIONS.refreshed(session, found)


async def change_conversation_for_turn(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID, *, new_messages: int
) -> tuple[Conversation, bool] | None:
    """As `change_conversation`, with whether a reply of an earlier turn is still
    STREAMING (one that lost its turn), in the same round trip."""
    found = await _changed_row(session, user_id, conversation_id, new_messages, streaming=True)
    if found is None:
        return None
    *columns, streaming = found
    return _CONVERSATIONS.refreshed(session, columns), bool(streaming)


def change_on_postgres() -> Update:
    """The change of `change_conversation` as PostgreSQL runs it (the user's position
    taken in it), for a statement that holds it: `change_values` are its binds, its
    rows are the conversation's columns (`refreshed_conversation`)."""
    statement = _CHANGES[True, False].statement
    assert isinstance(statement, Update)
    return statement


def change_values(
    user_id: uuid.UUID, conversation_id: uuid.UUID, new_messages: int = 0
) -> dict[str, Any]:
    return {
        "b_conversation_id": conversation_id,
        "b_user_id": user_id,
        "b_now": utcnow(),
        "b_new_messages": new_messages,
    }


def refreshed_conversation(session: AsyncSession, row: Sequence[Any]) -> Conversation:
    """A conversation row (its columns in the table's order) as the session's instance."""
    return _CONVERSATIONS.refreshed(session, row)


async def _changed_row(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    new_messages: int,
    *,
    streaming: bool,
) -> Sequence[Any] | None:
    values = change_values(user_id, conversation_id, new_messages)
    on_postgres = session.get_bind().dialect.name == "postgresql"
    if not on_postgres:
        values["b_position"] = await _next_change_position(session, user_id)
    found = await driver.rows(session, _CHANGES[on_postgres, streaming], values)
    return found[0] if found else None


async def soft_delete_conversation(session: AsyncSession, conversation: Conversation) -> None:
    now = utcnow()
    conversation.deleted_at = now
    await session.execute(
        update(Message)
        .where(Message.conversation_id == conversation.id, Message.deleted_at.is_(None))
        .values(deleted_at=now)
    )
    await session.flush()


async def record_change(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> int:
    """Gives the conversation the user's next change position (`conversationEvents`).
    The user's row is taken first, before the conversation's, in every writer (one lock
    order), and it orders the user's changes by commit as well as by position."""
    position = await _next_change_position(session, user_id)
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(change_seq=position)
        .execution_options(synchronize_session=False)
    )
    return position


_NEXT_CHANGE_POSITION = driver.Kept(_TAKE_NEXT_POSITION)


async def _next_change_position(session: AsyncSession, user_id: uuid.UUID) -> int:
    return int(await driver.scalar(session, _NEXT_CHANGE_POSITION, {"b_user_id": user_id}) or 0)


async def current_change_seq(session: AsyncSession, user_id: uuid.UUID) -> int:
    return int(await session.scalar(select(User.last_change_seq).where(User.id == user_id)) or 0)


async def changes_after(
    session: AsyncSession, user_id: uuid.UUID, position: int, limit: int
) -> list[Conversation]:
    """The user's conversations changed after `position`, deleted ones included, in
    change order; each once, as it is now."""
    rows = await session.scalars(
        select(Conversation)
        .where(Conversation.user_id == user_id, Conversation.change_seq > position)
        .order_by(Conversation.change_seq)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list(rows)
