"""Reading PostgreSQL's plans in tests: how many rows of a table a statement reads, on
its generic plan (what a statement reused past five executions may run on) or on the
plan made for its values."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import asyncpg


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(literal(item) for item in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


async def plan_of(
    admin: asyncpg.Connection,
    sql: str,
    parameters: Any,
    *,
    generic: bool = True,
    setup: str = "",
) -> dict[str, Any]:
    """The statement's plan as it ran once, with its actual rows (in a transaction rolled
    back after: a write changes nothing). `setup` runs first in that transaction (rows a
    write would otherwise find there already, deleted)."""
    name = f"plan_{uuid.uuid4().hex[:8]}"
    transaction = admin.transaction()
    await transaction.start()
    try:
        if setup:
            await admin.execute(setup)
        await admin.execute(f"PREPARE {name} AS {sql}")
        mode = "force_generic_plan" if generic else "force_custom_plan"
        await admin.execute(f"SET LOCAL plan_cache_mode = {mode}")
        arguments = ", ".join(literal(value) for value in parameters)
        call = f"EXECUTE {name}({arguments})" if arguments else f"EXECUTE {name}"
        explained = await admin.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {call}")
    finally:
        await transaction.rollback()
        await admin.execute(f"DEALLOCATE {name}")
    plan: dict[str, Any] = json.loads(explained)[0]["Plan"]
    return plan


async def rows_read(
    admin: asyncpg.Connection,
    sql: str,
    parameters: Any,
    table: str = "messages",
    *,
    generic: bool = True,
    setup: str = "",
) -> int:
    """The rows of `table` that the statement reads, run once."""
    plan = await plan_of(admin, sql, parameters, generic=generic, setup=setup)
    return table_rows(plan, table)


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def table_rows(node: dict[str, Any], table: str) -> int:
    own = 0
    if node.get("Relation Name") == table or table in node.get("Index Name", ""):
        seen = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        own = seen * node.get("Actual Loops", 1)
    return own + sum(table_rows(child, table) for child in node.get("Plans", []))
