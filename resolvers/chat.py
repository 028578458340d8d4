"""sendMessage, regenerateReply and stopReply."""

from __future__ import annotations

from agent.lifecycle import BusyPolicy
from agent.turn import TurnListener, TurnRows
from core.ids import expect_global_id
from db.models import Conversation, Message
from resolvers.context import Context

__all__ = ["TurnRows", "regenerate_reply", "send_message", "stop_reply"]


async def send_message(
    ctx: Context,
    conversation_id: str | None,
    content: str,
    client_message_id: str | None,
    listener: TurnListener | None = None,
    on_busy: BusyPolicy = BusyPolicy.QUEUE,
) -> TurnRows:
    row_id = (
        None
        if conversation_id is None
        else expect_global_id(conversation_id, "Conversation", field="conversationId")
    )
    user_id = await ctx.user_id()
    # a new conversation needs the user's row; an existing one is found under it
    async with ctx.exclusive(user_row=row_id is None) as session:
        return await ctx.app.assistant.send_message(
            session, user_id, row_id, content, client_message_id, listener, on_busy
        )


async def regenerate_reply(
    ctx: Context, conversation_id: str, listener: TurnListener | None = None
) -> TurnRows:
    row_id = expect_global_id(conversation_id, "Conversation", field="conversationId")
    user_id = await ctx.user_id()
    async with ctx.exclusive() as session:
        return await ctx.app.assistant.regenerate(session, user_id, row_id, listener)


async def stop_reply(ctx: Context, conversation_id: str) -> tuple[Conversation, Message | None]:
    row_id = expect_global_id(conversation_id, "Conversation", field="conversationId")
    user_id = await ctx.user_id()
    async with ctx.exclusive() as session:
        return await ctx.app.assistant.stop_reply(session, user_id, row_id)
