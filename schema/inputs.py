"""Input and payload types of the mutations."""

from __future__ import annotations

import strawberry

from schema.enums import BusyPolicy, Rating
from schema.types import Conversation, Message, Task


@strawberry.input
class SendMessageInput:
    content: str
    conversation_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Omit to start a new conversation (its title comes from the first message).",
    )
    client_message_id: str | None = strawberry.field(
        default=None,
        description="Idempotency key: a retry with the same key returns the first result "
        "and runs nothing twice.",
    )
    on_busy: BusyPolicy | None = strawberry.field(
        default=BusyPolicy.QUEUE,
        description="What to do when a reply is still being generated in the conversation "
        "(null: QUEUE).",
    )


@strawberry.input
class StopReplyInput:
    conversation_id: strawberry.ID


@strawberry.type(description="`message` is the stopped reply, or null when nothing was running.")
class StopReplyPayload:
    conversation: Conversation
    message: Message | None


@strawberry.type(description="`message` is the persisted assistant reply.")
class SendMessagePayload:
    conversation: Conversation
    user_message: Message
    message: Message


@strawberry.input
class CreateConversationInput:
    title: str | None = None


@strawberry.input
class RenameConversationInput:
    id: strawberry.ID
    title: str


@strawberry.input
class ConversationIdInput:
    id: strawberry.ID


@strawberry.type
class ConversationPayload:
    conversation: Conversation


@strawberry.type
class DeletePayload:
    deleted_id: strawberry.ID


@strawberry.input
class RegenerateReplyInput:
    conversation_id: strawberry.ID


@strawberry.input
class CreateTaskInput:
    title: str
    description: str | None = None


@strawberry.input
class UpdateTaskInput:
    id: strawberry.ID
    title: str | None = None
    description: str | None = None


@strawberry.input
class TaskIdInput:
    id: strawberry.ID


@strawberry.type
class TaskPayload:
    task: Task


@strawberry.input
class RateReplyInput:
    message_id: strawberry.ID
    rating: Rating
    comment: str | None = strawberry.field(default=None, description="At most 2000 characters.")


@strawberry.type
class RateReplyPayload:
    message: Message
