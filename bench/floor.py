"""FLOOR: the least a Python server can do to answer S1 — not part of the product.

Starlette + asyncpg + orjson under uvicorn (uvloop, httptools), one worker: verify the
HS256 bearer token (PyJWT, as taskchat does), run ONE SQL statement (the page with its
totalCount, messageCount and lastMessage, the user found by the token's subject), and
write the JSON of S1's shape. The GraphQL document in the body is not read: this endpoint
answers S1 only. Ids are encoded like taskchat's; cursors are unsigned.

    FLOOR_DSN=postgresql://… JWT_SECRET=… python -m bench.floor PORT
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jwt
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PAGE = 20
S1_SQL = """
WITH me AS (SELECT id FROM users WHERE subject = $1),
listed AS (
  SELECT c.id, c.title, c.updated_at FROM conversations c JOIN me ON c.user_id = me.id
  WHERE c.status = 'ACTIVE' AND c.deleted_at IS NULL
),
page AS (SELECT * FROM listed ORDER BY updated_at DESC, id DESC LIMIT $2 + 1)
SELECT (SELECT count(*) FROM listed) AS total, p.id, p.title, p.updated_at,
  (SELECT count(*) FROM messages m JOIN me ON m.user_id = me.id
   WHERE m.conversation_id = p.id AND m.deleted_at IS NULL) AS message_count,
  lm.content, lm.created_at
FROM page p
LEFT JOIN LATERAL (
  SELECT content, created_at FROM messages m
  WHERE m.conversation_id = p.id AND m.deleted_at IS NULL ORDER BY seq DESC LIMIT 1
) lm ON true
ORDER BY p.updated_at DESC, p.id DESC
"""

SECRET = os.environ.get("JWT_SECRET", "")
pool: asyncpg.Pool | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def graphql(request: Request) -> Response:
    authorization = request.headers.get("authorization", "")
    try:
        claims = jwt.decode(authorization.removeprefix("Bearer "), SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        return Response(b'{"errors":[{"message":"unauthenticated"}]}', 401)
    await request.body()
    assert pool is not None
    rows = await pool.fetch(S1_SQL, claims["sub"], PAGE)
    edges: list[dict[str, Any]] = []
    for row in rows[:PAGE]:
        last = None
        if row["content"] is not None:
            last = {"content": row["content"], "createdAt": row["created_at"]}
        edges.append(
            {
                "cursor": _b64(orjson.dumps([row["updated_at"], str(row["id"])])),
                "node": {
                    "id": _b64(f"Conversation:{row['id']}".encode()),
                    "title": row["title"],
                    "updatedAt": row["updated_at"],
                    "messageCount": row["message_count"],
                    "lastMessage": last,
                },
            }
        )
    data = {
        "conversations": {
            "totalCount": rows[0]["total"] if rows else 0,
            "edges": edges,
            "pageInfo": {
                "hasNextPage": len(rows) > PAGE,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }
    }
    return Response(orjson.dumps({"data": data}), media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(
        os.environ["FLOOR_DSN"], min_size=1, max_size=int(os.environ.get("FLOOR_POOL", "10"))
    )
    yield
    await pool.close()


app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])], lifespan=lifespan)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
