"""`node(id:)`: any of our objects by global id, with the same ownership rule as
every other read."""

from __future__ import annotations

from core.ids import parse_global_id
from db import messages as message_queries
from db import tasks as task_queries
from db.models import Conversation, Message, Task, User
from resolvers.context import Context


async def node(ctx: Context, global_id: str) -> User | Conversation | Message | Task | None:
    type_name, row_id = parse_global_id(global_id)
    user = await ctx.user()
    if type_name == "User":
        return user if row_id == user.id else None
    if type_name == "Conversation":
        return await ctx.loaders.conversation_by_id.load(row_id)
    async with ctx.reading() as session:
        if type_name == "Message":
            found = await message_queries.get_messages(session, user.id, [row_id])
            return found[0] if found else None
        return await task_queries.get_task(session, user.id, row_id)


__all__ = ["node"]
_ = (Message, Task)
