"""GraphQL enums: the database enums, exposed under the contract's names."""

from __future__ import annotations

import strawberry

from db import models

ConversationStatus = strawberry.enum(models.ConversationStatus, name="ConversationStatus")
MessageRole = strawberry.enum(models.MessageRole, name="MessageRole")
TaskStatus = strawberry.enum(models.TaskStatus, name="TaskStatus")
