"""Queries on messages. A message is visible only while it and its conversation are
live, and only to its owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer

from core.errors import NotFound
from db import conversations as conversation_queries
from db import driver
from db.conversations import next_message_seq
from db.models import (
    Conversation,
    Message,
    MessageRole,
    MessageStatus,
    is_listed,
    is_streaming,
)
from db.pagination import ListSpec, Page, Window, fetch_page
from db.types import utcnow

#: in conversation order
MESSAGES = ListSpec.of("messages", Message.seq)


def _listed() -> ColumnElement[bool]:
    """Lists show finished messages: a STREAMING reply is `activeReply` until it ends, a
    FAILED one is kept for the record only."""
    return is_listed(Message.status)


def _owned_rows() -> Select[Message]:
    """The user's (bind parameter `user_id`) messages that are not deleted. Soft-deleting
    a conversation soft-deletes its messages too, so one check suffices; reads never show
    a message's metadata, so it is not fetched."""
    return (
        select(Message)
        .options(defer(Message.meta, raiseload=True))
        .where(Message.user_id == bindparam("user_id"), Message.deleted_at.is_(None))
    )


def _live_rows() -> Select[Message]:
    """`_owned_rows`, as lists show them."""
    return _owned_rows().where(_listed())


def in_conversation_filters() -> list[ColumnElement[bool]]:
    """A conversation's page of messages: bind parameters `user_id`, `conversation_id`."""
    return [
        Message.user_id == bindparam("user_id"),
        Message.deleted_at.is_(None),
        _listed(),
        Message.conversation_id == bindparam("conversation_id"),
    ]


def _in_conversation() -> Select[Message]:
    return (
        select(Message)
        .options(defer(Message.meta, raiseload=True))
        .where(*in_conversation_filters())
    )


async def list_messages(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID, window: Window
) -> Page[Message]:
    params = {"user_id": user_id, "conversation_id": conversation_id}
    return await fetch_page(session, "messages", _in_conversation, params, MESSAGES, window)


_COUNTS = (
    select(Message.conversation_id, func.count())
    .where(
        Message.conversation_id.in_(bindparam("conversation_ids", expanding=True)),
        Message.user_id == bindparam("user_id"),
        Message.deleted_at.is_(None),
        _listed(),
    )
    .group_by(Message.conversation_id)
)


async def count_messages(
    session: AsyncSession, user_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        _COUNTS, {"conversation_ids": list(conversation_ids), "user_id": user_id}
    )
    return {conversation_id: int(count) for conversation_id, count in rows.all()}


def _last_messages() -> Select[Message]:
    newer = aliased(Message)
    newest_seq = (
        select(func.max(newer.seq))
        .where(
            newer.conversation_id == Message.conversation_id,
            newer.deleted_at.is_(None),
            is_listed(newer.status),
        )
        .scalar_subquery()
    )
    return _live_rows().where(
        Message.conversation_id.in_(bindparam("conversation_ids", expanding=True)),
        Message.seq == newest_seq,
    )


_LAST_MESSAGES = _last_messages()
_BY_IDS = _owned_rows().where(Message.id.in_(bindparam("ids", expanding=True)))


async def last_messages(
    session: AsyncSession, user_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Message]:
    rows = await session.scalars(
        _LAST_MESSAGES, {"conversation_ids": list(conversation_ids), "user_id": user_id}
    )
    return {message.conversation_id: message for message in rows}


async def get_messages(
    session: AsyncSession, user_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> list[Message]:
    """By id (`node`, loaders, `replyStream`): whatever the status."""
    return list(await session.scalars(_BY_IDS, {"ids": list(message_ids), "user_id": user_id}))


async def active_replies(
    session: AsyncSession, user_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Message]:
    """The STREAMING reply of each conversation that has one (a turn lock makes it one)."""
    rows = await session.scalars(
        _owned_rows()
        .where(
            Message.conversation_id.in_(conversation_ids),
            is_streaming(Message.status),
        )
        .order_by(Message.seq),
        {"user_id": user_id},
    )
    return {message.conversation_id: message for message in rows}


_MESSAGES = driver.Loader(Message)

_FAIL_STREAMING = driver.Kept(
    update(Message)
    .where(
        Message.conversation_id == bindparam("b_conversation_id"),
        is_streaming(Message.status),
    )
    .values(status=MessageStatus.FAILED)
)


async def fail_streaming_replies(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    """Ends FAILED the conversation's replies still STREAMING (one statement)."""
    await driver.execute(session, _FAIL_STREAMING, {"b_conversation_id": conversation_id})


class HistoryLine(NamedTuple):
    """What the model sees of a stored message (its prompt needs no more)."""

    role: MessageRole
    content: str
    tool_calls: list[dict[str, Any]] | None


def recent_history_statement(prefix: str = "b_") -> Select[Any]:
    """The newest live messages of a conversation, newest first: binds
    `<prefix>conversation_id`, `<prefix>up_to_seq` and `<prefix>limit`."""
    return (
        select(Message.role, Message.content, Message.tool_calls)
        .where(
            Message.conversation_id == bindparam(f"{prefix}conversation_id"),
            Message.deleted_at.is_(None),
            Message.seq <= bindparam(f"{prefix}up_to_seq"),
            _listed(),
        )
        .order_by(Message.seq.desc())
        .limit(bindparam(f"{prefix}limit"))
    )


def history_values(
    conversation_id: uuid.UUID, limit: int, up_to_seq: int, prefix: str = "b_"
) -> dict[str, Any]:
    return {
        f"{prefix}conversation_id": conversation_id,
        f"{prefix}up_to_seq": up_to_seq,
        f"{prefix}limit": limit,
    }


def history_lines(rows: driver.Rows) -> list[HistoryLine]:
    """A history read's rows (newest first) as the model reads them: oldest first."""
    return [HistoryLine(MessageRole(row[0]), row[1], row[2]) for row in reversed(rows)]


_RECENT_HISTORY = driver.Kept(recent_history_statement())


async def recent_history(
    session: AsyncSession, conversation_id: uuid.UUID, limit: int, up_to_seq: int
) -> list[HistoryLine]:
    """The newest `limit` live messages up to and including `up_to_seq`, oldest first:
    their role, content and tool calls (plain rows: no instances, no metadata)."""
    rows = await driver.rows(
        session, _RECENT_HISTORY, history_values(conversation_id, limit, up_to_seq)
    )
    return history_lines(rows)


async def find_by_client_message_id(
    session: AsyncSession, user_id: uuid.UUID, client_message_id: str
) -> Message | None:
    return await session.scalar(
        select(Message).where(
            Message.user_id == user_id, Message.client_message_id == client_message_id
        )
    )


async def live_reply_to(session: AsyncSession, user_message_id: uuid.UUID) -> Message | None:
    return await session.scalar(
        select(Message).where(
            Message.parent_id == user_message_id, Message.deleted_at.is_(None), _listed()
        )
    )


async def replies_to(session: AsyncSession, user_message_id: uuid.UUID) -> list[Message]:
    """Every reply the question got, retired (regenerated) ones too, oldest first."""
    rows = await session.scalars(
        select(Message)
        .where(Message.parent_id == user_message_id, Message.role == MessageRole.ASSISTANT)
        .order_by(Message.seq)
    )
    return list(rows)


async def last_live_message(session: AsyncSession, conversation_id: uuid.UUID) -> Message | None:
    return await session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.deleted_at.is_(None), _listed())
        .order_by(Message.seq.desc())
        .limit(1)
    )


def new_message(
    *,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID,
    seq: int,
    role: MessageRole,
    content: str,
    created_at: datetime,
    parent_id: uuid.UUID | None = None,
    client_message_id: str | None = None,
    meta: dict[str, Any] | None = None,
    status: MessageStatus = MessageStatus.COMPLETED,
    message_id: uuid.UUID | None = None,
) -> Message:
    """A message at a position its conversation gave it (`next_message_seq`,
    `change_conversation`), to be stored with `store_messages`."""
    return Message(
        id=message_id or uuid.uuid4(),
        conversation_id=conversation_id,
        user_id=user_id,
        seq=seq,
        role=role,
        status=status,
        content=content,
        tool_calls=[],
        parent_id=parent_id,
        client_message_id=client_message_id,
        meta=meta or {},
        created_at=created_at,
    )


_STORE = _MESSAGES.insert()


async def store_messages(session: AsyncSession, *messages: Message) -> None:
    """One statement for all of them (made by `new_message`: every column set). They
    stay rows no session holds: what changes them later is a statement too."""
    await driver.execute_many(
        session,
        _STORE,
        [_MESSAGES.values_of(message) for message in messages],
    )


def _store_exchange() -> driver.Kept:
    """PostgreSQL: a turn's change of its conversation (two message positions claimed),
    its replies still STREAMING (lost by an earlier turn) ended FAILED, and its question
    and reply stored at the two positions, in one statement. The messages wait for the
    change (they read its row): the user's row is locked first, then the conversation's,
    as by every writer. The FAILED update reads the statement's snapshot, where the new
    reply is not yet."""
    changed = conversation_queries.change_on_postgres().cte("changed")
    lost = (
        update(Message)
        .where(
            Message.conversation_id == bindparam("b_conversation_id"),
            is_streaming(Message.status),
            exists(select(literal_column("1")).select_from(changed)),
        )
        .values(status=MessageStatus.FAILED)
        .cte("lost")
    )

    def at(prefix: str, before_last: int) -> Select[Any]:
        return select(
            *(
                changed.c.last_seq - before_last
                if column.key == "seq"
                else driver.bound(column, prefix)
                for column in _MESSAGES.columns
            )
        ).select_from(changed)

    stored = (
        insert(Message)
        .from_select(
            [column.key for column in _MESSAGES.columns], union_all(at("q_", 1), at("r_", 0))
        )
        .cte("stored")
    )
    return driver.Kept(select(changed).add_cte(lost, stored))


_STORE_EXCHANGE = _store_exchange()


async def store_exchange(
    session: AsyncSession, question: Message, reply: Message
) -> Conversation | None:
    """PostgreSQL: as `add_exchange` does it in three statements, in one (see
    `_store_exchange`); `question` and `reply` (made by `new_message`, of one
    conversation and user) get their positions. The conversation as it is now; `None`
    if it is gone or not the user's, and nothing is written then."""
    values = conversation_queries.change_values(
        question.user_id, question.conversation_id, new_messages=2
    )
    values.update(_MESSAGES.values_of(question, "q_"))
    values.update(_MESSAGES.values_of(reply, "r_"))
    row = await driver.first(session, _STORE_EXCHANGE, values)
    if row is None:
        return None
    conversation = conversation_queries.refreshed_conversation(session, row)
    question.seq, reply.seq = conversation.last_seq - 1, conversation.last_seq
    return conversation


async def add_message(
    session: AsyncSession,
    *,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID,
    role: MessageRole,
    content: str,
    parent_id: uuid.UUID | None = None,
    client_message_id: str | None = None,
    meta: dict[str, Any] | None = None,
    status: MessageStatus = MessageStatus.COMPLETED,
) -> Message:
    now = utcnow()
    seq = await next_message_seq(session, conversation_id, now)
    if seq is None:
        raise NotFound("conversation")
    message = new_message(
        conversation_id=conversation_id,
        user_id=user_id,
        seq=seq,
        role=role,
        content=content,
        created_at=now,
        parent_id=parent_id,
        client_message_id=client_message_id,
        meta=meta,
        status=status,
    )
    await store_messages(session, message)
    return message


def finish_reply_statement(prefix: str = "b_", *, where: Any = None) -> Update:
    """A reply's end (what `finish_reply` sends): binds named `<prefix><column>`, the
    reply's id `<prefix>id`; `where`, a further condition."""
    return (
        update(Message)
        .where(Message.id == bindparam(f"{prefix}id"), *(() if where is None else (where,)))
        .values(
            status=driver.bound(Message.status, prefix),
            content=driver.bound(Message.content, prefix),
            tool_calls=driver.bound(Message.tool_calls, prefix),
            meta=driver.bound(Message.meta, prefix),
        )
        .returning(*_MESSAGES.columns)
    )


def finish_reply_values(
    reply: Message,
    status: MessageStatus,
    content: str,
    tool_calls: list[dict[str, Any]],
    meta: dict[str, Any],
    prefix: str = "b_",
) -> dict[str, Any]:
    """The binds of `finish_reply_statement(prefix)`: `reply`'s metadata kept, extended
    by `meta`."""
    return {
        f"{prefix}id": reply.id,
        f"{prefix}status": status,
        f"{prefix}content": content,
        f"{prefix}tool_calls": tool_calls,
        f"{prefix}meta": {**(reply.meta or {}), **meta},
    }


def refreshed_message(session: AsyncSession, row: Sequence[Any]) -> Message:
    """A message row (its columns in the table's order) as the session's instance."""
    return _MESSAGES.refreshed(session, row)


_FINISH_REPLY = driver.Kept(finish_reply_statement())


async def finish_reply(
    session: AsyncSession,
    reply: Message,
    *,
    status: MessageStatus,
    content: str,
    tool_calls: list[dict[str, Any]],
    meta: dict[str, Any],
) -> Message:
    """A STREAMING reply's end: `reply` is its row as stored or read in this transaction
    (its metadata is kept and extended). One UPDATE; the reply as it is now (the
    session's copy too, if it holds one)."""
    row = await driver.first(
        session, _FINISH_REPLY, finish_reply_values(reply, status, content, tool_calls, meta)
    )
    if row is None:
        raise NotFound("message")
    return _MESSAGES.refreshed(session, row)


async def finish_reply_by_id(
    session: AsyncSession,
    reply_id: uuid.UUID,
    *,
    status: MessageStatus,
    content: str,
    tool_calls: list[dict[str, Any]],
    meta: dict[str, Any],
) -> Message:
    """`finish_reply` of a reply known by its id only (read fresh first)."""
    stored = await session.get(Message, reply_id, populate_existing=True)
    if stored is None:
        raise NotFound("message")
    return await finish_reply(
        session, stored, status=status, content=content, tool_calls=tool_calls, meta=meta
    )


async def get_message(session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    return await session.get(Message, message_id, populate_existing=True)


async def soft_delete_message(
    session: AsyncSession, message_id: uuid.UUID, at: datetime | None = None
) -> None:
    await session.execute(
        update(Message).where(Message.id == message_id).values(deleted_at=at or utcnow())
    )


_MESSAGES_AFTER = driver.Kept(
    select(*_MESSAGES.columns)
    .where(
        Message.user_id == bindparam("user_id"),
        Message.deleted_at.is_(None),
        _listed(),
        Message.conversation_id == bindparam("conversation_id"),
        Message.seq > bindparam("seq"),
    )
    .order_by(Message.seq)
    .limit(bindparam("limit"))
)


async def messages_after(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID, seq: int, limit: int
) -> list[Message]:
    """Live messages stored after position `seq`, in order (rows no session holds)."""
    rows = await driver.rows(
        session,
        _MESSAGES_AFTER,
        {"user_id": user_id, "conversation_id": conversation_id, "seq": seq, "limit": limit},
    )
    return [_MESSAGES(row) for row in rows]
