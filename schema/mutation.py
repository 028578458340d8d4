"""The Mutation root."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from core.ids import to_global_id
from db.models import ConversationStatus, TaskStatus
from resolvers import chat as chat_resolvers
from resolvers import conversations as conversation_resolvers
from resolvers import records as record_resolvers
from resolvers import tasks as task_resolvers
from resolvers.context import Context
from schema.enums import BusyPolicy
from schema.inputs import (
    ConversationIdInput,
    ConversationPayload,
    CreateConversationInput,
    CreateTaskInput,
    DeletePayload,
    RateReplyInput,
    RateReplyPayload,
    RegenerateReplyInput,
    RenameConversationInput,
    SendMessageInput,
    SendMessagePayload,
    StopReplyInput,
    StopReplyPayload,
    TaskIdInput,
    TaskPayload,
    UpdateTaskInput,
)
from schema.types import Conversation, Message, Task

Ctx = Info[Context, None]


def _turn_payload(turn: chat_resolvers.TurnRows) -> SendMessagePayload:
    return SendMessagePayload(
        conversation=Conversation.from_row(turn.conversation),
        user_message=Message.from_row(turn.user_message),
        message=Message.from_row(turn.reply),
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Stores the user message, runs the agent on the recent history, "
        "stores and returns the reply."
    )
    async def send_message(self, info: Ctx, input: SendMessageInput) -> SendMessagePayload:
        turn = await chat_resolvers.send_message(
            info.context,
            input.conversation_id,
            input.content,
            input.client_message_id,
            on_busy=input.on_busy or BusyPolicy.QUEUE,
        )
        return _turn_payload(turn)

    @strawberry.mutation(
        description="Stops the reply being generated in the conversation, whichever instance "
        "runs it; what was generated is kept as a STOPPED reply."
    )
    async def stop_reply(self, info: Ctx, input: StopReplyInput) -> StopReplyPayload:
        conversation, reply = await chat_resolvers.stop_reply(info.context, input.conversation_id)
        return StopReplyPayload(
            conversation=Conversation.from_row(conversation),
            message=None if reply is None else Message.from_row(reply),
        )

    @strawberry.mutation(description="Replaces the last assistant reply with a new one.")
    async def regenerate_reply(self, info: Ctx, input: RegenerateReplyInput) -> SendMessagePayload:
        return _turn_payload(
            await chat_resolvers.regenerate_reply(info.context, input.conversation_id)
        )

    @strawberry.mutation
    async def create_conversation(
        self, info: Ctx, input: CreateConversationInput
    ) -> ConversationPayload:
        row = await conversation_resolvers.create_conversation(info.context, input.title)
        return ConversationPayload(conversation=Conversation.from_row(row))

    @strawberry.mutation
    async def rename_conversation(
        self, info: Ctx, input: RenameConversationInput
    ) -> ConversationPayload:
        row = await conversation_resolvers.rename_conversation(info.context, input.id, input.title)
        return ConversationPayload(conversation=Conversation.from_row(row))

    @strawberry.mutation
    async def archive_conversation(
        self, info: Ctx, input: ConversationIdInput
    ) -> ConversationPayload:
        row = await conversation_resolvers.set_conversation_status(
            info.context, input.id, ConversationStatus.ARCHIVED
        )
        return ConversationPayload(conversation=Conversation.from_row(row))

    @strawberry.mutation
    async def restore_conversation(
        self, info: Ctx, input: ConversationIdInput
    ) -> ConversationPayload:
        row = await conversation_resolvers.set_conversation_status(
            info.context, input.id, ConversationStatus.ACTIVE
        )
        return ConversationPayload(conversation=Conversation.from_row(row))

    @strawberry.mutation(
        description="Soft delete: the conversation and its messages disappear from every read."
    )
    async def delete_conversation(self, info: Ctx, input: ConversationIdInput) -> DeletePayload:
        row_id = await conversation_resolvers.delete_conversation(info.context, input.id)
        return DeletePayload(deleted_id=strawberry.ID(to_global_id("Conversation", row_id)))

    @strawberry.mutation
    async def create_task(self, info: Ctx, input: CreateTaskInput) -> TaskPayload:
        row = await task_resolvers.create_task(info.context, input.title, input.description)
        return TaskPayload(task=Task.from_row(row))

    @strawberry.mutation
    async def update_task(self, info: Ctx, input: UpdateTaskInput) -> TaskPayload:
        row = await task_resolvers.update_task(
            info.context, input.id, input.title, input.description
        )
        return TaskPayload(task=Task.from_row(row))

    @strawberry.mutation
    async def complete_task(self, info: Ctx, input: TaskIdInput) -> TaskPayload:
        row = await task_resolvers.set_task_status(info.context, input.id, TaskStatus.COMPLETED)
        return TaskPayload(task=Task.from_row(row))

    @strawberry.mutation
    async def reopen_task(self, info: Ctx, input: TaskIdInput) -> TaskPayload:
        row = await task_resolvers.set_task_status(info.context, input.id, TaskStatus.PENDING)
        return TaskPayload(task=Task.from_row(row))

    @strawberry.mutation
    async def delete_task(self, info: Ctx, input: TaskIdInput) -> DeletePayload:
        row_id = await task_resolvers.delete_task(info.context, input.id)
        return DeletePayload(deleted_id=strawberry.ID(to_global_id("Task", row_id)))

    @strawberry.mutation(
        description="One rating per user and reply; a second call changes it. Rating a USER "
        "message is BAD_USER_INPUT."
    )
    async def rate_reply(self, info: Ctx, input: RateReplyInput) -> RateReplyPayload:
        message, _ = await record_resolvers.rate_reply(
            info.context, input.message_id, input.rating, input.comment
        )
        return RateReplyPayload(message=Message.from_row(message))
