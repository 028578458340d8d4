"""GraphQL enums: the database enums, exposed under the contract's names."""

from __future__ import annotations

import strawberry

from agent.lifecycle import BusyPolicy as _BusyPolicy
from db import models

# registered in place, so the same classes serve as database and GraphQL enums
strawberry.enum(models.ConversationStatus, name="ConversationStatus")
strawberry.enum(models.MessageRole, name="MessageRole")
strawberry.enum(models.TaskStatus, name="TaskStatus")
strawberry.enum(models.Rating, name="Rating")
strawberry.enum(models.MessageStatus, name="MessageStatus")
strawberry.enum(
    _BusyPolicy,
    name="BusyPolicy",
    description="QUEUE: wait for the running turn. REJECT: CONVERSATION_BUSY, nothing "
    "stored. INTERRUPT: stop it (STOPPED), then answer.",
)

ConversationStatus = models.ConversationStatus
MessageRole = models.MessageRole
TaskStatus = models.TaskStatus
Rating = models.Rating
MessageStatus = models.MessageStatus
BusyPolicy = _BusyPolicy
