"""What a turn left on the record: usage, feedback, provenance, the question a reply
answers. Reads go through the request's DataLoaders (one statement per page)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.ids import expect_global_id
from core.metrics import REPLY_FEEDBACK
from db import agent_runs as run_queries
from db.models import AgentRun, Message, MessageRole, Rating, ReplyFeedback, Task
from resolvers.context import Context
from services import feedback as feedback_service


async def reply_to(ctx: Context, message: Message) -> Message | None:
    if message.role != MessageRole.ASSISTANT or message.parent_id is None:
        return None
    return await ctx.loaders.message_by_id.load(message.parent_id)


async def run_of(ctx: Context, message: Message) -> AgentRun | None:
    """The run that produced the reply, when it recorded what it spent."""
    if message.role != MessageRole.ASSISTANT:
        return None
    run = await ctx.loaders.run_by_reply.load(message.id)
    return run if run is not None and run.prompt_tokens is not None else None


async def feedback_of(ctx: Context, message: Message) -> ReplyFeedback | None:
    if message.role != MessageRole.ASSISTANT:
        return None
    return await ctx.loaders.feedback_by_message.load(message.id)


async def affected_tasks(ctx: Context, message: Message) -> list[Task]:
    if message.role != MessageRole.ASSISTANT:
        return []
    return await ctx.loaders.affected_tasks_by_message.load(message.id)


async def origin_of(ctx: Context, task: Task) -> tuple[Message, str] | None:
    return await ctx.loaders.origin_by_task.load(task.id)


async def usage_totals(ctx: Context, since: datetime | None) -> run_queries.UsageTotals:
    user_id = await ctx.user_id()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return await ctx.read(lambda session: run_queries.usage_totals(session, user_id, since))


async def rate_reply(
    ctx: Context, message_id: str, rating: Rating, comment: str | None
) -> tuple[Message, ReplyFeedback]:
    row_id = expect_global_id(message_id, "Message", field="messageId")
    user_id = await ctx.user_id()
    async with ctx.writing() as session:
        message, feedback = await feedback_service.rate_reply(
            session, user_id, row_id, rating, comment
        )
    REPLY_FEEDBACK.labels(rating.value).inc()
    ctx.loaders.feedback_by_message.prime(message.id, feedback)
    return message, feedback
