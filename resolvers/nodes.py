"""`node(id:)`: any of our objects by global id, with the same ownership rule as
every other read. Each type loads through its DataLoader, so many aliased nodes cost
one statement per type."""

from __future__ import annotations

from core.ids import parse_global_id
from db.models import Conversation, Message, Task, User
from resolvers.context import Context


async def node(ctx: Context, global_id: str) -> User | Conversation | Message | Task | None:
    type_name, row_id = parse_global_id(global_id)
    if type_name == "User":
        user = await ctx.user()
        return user if row_id == user.id else None
    if type_name == "Conversation":
        return await ctx.loaders.conversation_by_id.load(row_id)
    if type_name == "Message":
        return await ctx.loaders.message_by_id.load(row_id)
    return await ctx.loaders.task_by_id.load(row_id)
