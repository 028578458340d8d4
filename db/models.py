"""The tables. Every read path we serve has its index declared next to the columns.

Rows carry the owner's `user_id` (messages too) so that every query can be scoped to
the token's user without a join. Messages are ordered by a per-conversation `seq`
(unique), so order is deterministic even when timestamps are equal. `status` and
`parent_id` on messages leave room for stop, resume and branching.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from db.types import PortableJSON, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ConversationStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class MessageRole(enum.StrEnum):
    USER = "USER"
    ASSISTANT = "ASSISTANT"


class MessageStatus(enum.StrEnum):
    """USER messages are COMPLETED. A reply is stored STREAMING when its turn starts
    answering and ends COMPLETED, STOPPED (a stop or an interrupt: the text so far) or
    FAILED (the model failed; listed nowhere, kept for the record)."""

    STREAMING = "STREAMING"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


#: the statuses that `messages`, `lastMessage`, `messageCount` and `messageAdded` show
LISTED_STATUSES = (MessageStatus.COMPLETED, MessageStatus.STOPPED)


#: the rows `is_listed` keeps, as the partial index of listed messages states them
_LISTED_SQL = "deleted_at IS NULL AND status IN ('COMPLETED', 'STOPPED')"


def is_listed(status: Any) -> ColumnElement[bool]:
    """`status IN ('COMPLETED', 'STOPPED')` with the constants in the SQL: a bound IN list
    is expanded on every execution (SQLAlchemy's post-compile step), constants once."""
    return cast(
        "ColumnElement[bool]",
        status.in_([literal_column(f"'{value.value}'") for value in LISTED_STATUSES]),
    )


def status_is(status: Any, value: enum.StrEnum) -> ColumnElement[bool]:
    """`status = '<value>'` with the constant in the SQL, so that every plan, a generic
    one too, can use a partial index of rows in that status."""
    return cast("ColumnElement[bool]", status == literal_column(f"'{value.value}'"))


def is_streaming(status: Any) -> ColumnElement[bool]:
    """The replies being written: `ix_messages_streaming` serves it on any plan."""
    return status_is(status, MessageStatus.STREAMING)


class TaskStatus(enum.StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"


class Rating(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"


class EffectKind(enum.StrEnum):
    """What a tool call did to a task (a deleted task keeps no record)."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    COMPLETED = "COMPLETED"


class RunStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16, create_constraint=True)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = _uuid_pk()
    subject: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the user's newest conversation change; the next change takes + 1
    #: (`conversationEvents` resumes from a position in this sequence)
    last_change_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # conversations(status:) by recency, live rows only
        Index(
            "ix_conversations_user_status_recency",
            "user_id",
            "status",
            "updated_at",
            "id",
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
        # conversationEvents: the user's changes after a position (deleted rows too)
        Index("ix_conversations_user_change_seq", "user_id", "change_seq"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[ConversationStatus] = mapped_column(
        _enum(ConversationStatus, "conversation_status"), default=ConversationStatus.ACTIVE
    )
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", PortableJSON, default=dict)
    #: the seq of the newest message; the next message takes last_seq + 1
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    #: the position of its latest change in the owner's `users.last_change_seq`
    change_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        # idempotency: one key per user (so also per conversation), only where given
        Index(
            "uq_messages_user_client_message_id",
            "user_id",
            "client_message_id",
            unique=True,
            postgresql_where=text("client_message_id IS NOT NULL"),
            sqlite_where=text("client_message_id IS NOT NULL"),
        ),
        Index("ix_messages_parent_id", "parent_id"),
        # the listed messages (finished, not deleted) of a conversation in order, with
        # their user: a count, the newest message and a history page read them from the
        # index alone, where they read the table and skipped the rest
        Index(
            "ix_messages_listed",
            "conversation_id",
            "seq",
            postgresql_include=["user_id"],
            postgresql_where=text(_LISTED_SQL),
            sqlite_where=text(_LISTED_SQL),
        ),
        # the replies being written (a few at any time): found without reading the
        # conversation's other messages (`is_streaming`)
        Index(
            "ix_messages_streaming",
            "conversation_id",
            postgresql_where=text("status = 'STREAMING'"),
            sqlite_where=text("status = 'STREAMING'"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[MessageRole] = mapped_column(_enum(MessageRole, "message_role"))
    status: Mapped[MessageStatus] = mapped_column(
        _enum(MessageStatus, "message_status"), default=MessageStatus.COMPLETED
    )
    content: Mapped[str] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(PortableJSON, default=list)
    #: an assistant reply points at the user message it answers
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    client_message_id: Mapped[str | None] = mapped_column(String(255))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", PortableJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReplyChunk(Base):
    """A reply's stream while it is written, so that any instance can serve it: the
    text pieces (`sequence` 1, 2, 3, …, `text_offset` where the piece starts in the
    content) and the tool calls (`tool_call`), written in batches. Consecutive pieces of
    text written together share a row (`pieces`: their lengths in code points; then
    `sequence` is the last one's and `text_offset` the first one's): a reply streamed in
    80 pieces costs a row or a few, not 80 (db/reply_chunks.py packs and unpacks)."""

    __tablename__ = "reply_chunks"

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text_offset: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    tool_call: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    #: null: the row is one entry
    pieces: Mapped[list[int] | None] = mapped_column(PortableJSON, nullable=True)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # both orders run the same way, so one index serves first/after and last/before
        Index("ix_tasks_user_recency", "user_id", "created_at", "id"),
        Index("ix_tasks_user_status_recency", "user_id", "status", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[TaskStatus] = mapped_column(
        _enum(TaskStatus, "task_status"), default=TaskStatus.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgentRun(Base):
    """One run of the agent (a turn). Rate limits count these across instances; a
    future stop request marks the running row. It keeps what the turn spent (tokens,
    summed over its steps; estimated when the provider sent no counts), whether the
    turn ended with a reply or not, and the reply it produced."""

    __tablename__ = "agent_runs"
    __table_args__ = (
        Index("ix_agent_runs_user_created", "user_id", "created_at"),
        Index("ix_agent_runs_reply_id", "reply_id"),
        # the runs still running (a few at any time), by question: `fail_running_runs_of`
        Index(
            "ix_agent_runs_running",
            "user_message_id",
            postgresql_where=text("status = 'RUNNING'"),
            sqlite_where=text("status = 'RUNNING'"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    user_message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE")
    )
    status: Mapped[RunStatus] = mapped_column(
        _enum(RunStatus, "run_status"), default=RunStatus.RUNNING
    )
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    model: Mapped[str | None] = mapped_column(String(255))
    #: null until the turn has spent something (a run refused before the model has none)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    usage_estimated: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    latency_ms: Mapped[int | None] = mapped_column(Integer)


class TaskEffect(Base):
    """Provenance: which reply's tool call created or changed a task. The key of an
    effect is (reply, tool call id): one reply never records the same call twice."""

    __tablename__ = "task_effects"
    __table_args__ = (
        UniqueConstraint("message_id", "tool_call_id"),
        Index("ix_task_effects_task_id", "task_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    tool_call_id: Mapped[str] = mapped_column(String(255))
    #: the call's place in its reply, so a reply lists its tasks in the order it touched them
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[EffectKind] = mapped_column(_enum(EffectKind, "effect_kind"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReplyFeedback(Base):
    """A user's rating of an assistant reply: one per user and reply, changeable."""

    __tablename__ = "reply_feedback"
    __table_args__ = (UniqueConstraint("message_id", "user_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    rating: Mapped[Rating] = mapped_column(_enum(Rating, "rating"))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
