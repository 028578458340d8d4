"""A hostile corpus: documents, bodies, tokens and WebSocket frames meant to hang, crash or
confuse the server. Each must be answered with a 4xx or a contract code (a WebSocket: a
4xxx / 1008 / 1009 close or a coded error), quickly, and leave the server healthy
(`/health` and a normal query) afterwards.

    python -m prove.hostile          # every case against a fresh server on PostgreSQL

Prints each case's outcome and time; a case over a second is flagged. The suite runs the
same cases (tests/prove/test_hostile.py), one test each.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import websockets

from prove.common import SECRET, ServerProcess, drop_database, fresh_database, token

CONTRACT_CODES = {
    "UNAUTHENTICATED",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "RATE_LIMITED",
    "QUERY_TOO_COMPLEX",
    "AGENT_TIMEOUT",
    "AGENT_UNAVAILABLE",
    "CONVERSATION_BUSY",
    "SERVICE_UNAVAILABLE",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "PERSISTED_QUERY_NOT_FOUND",
}
#: WebSocket close codes that are a proper refusal (the protocol's 44xx, policy, too big)
PROPER_CLOSES = {1008, 1009} | set(range(4400, 4500))
#: a case that takes longer than this has hung (the script flags anything over 1 s)
HANG_SECONDS = 5.0


@dataclass
class Target:
    url: str
    ws_url: str
    auth: str
    conversation: str


@dataclass
class Outcome:
    ok: bool
    detail: str
    seconds: float = 0.0


Probe = Callable[[Target, httpx.AsyncClient], Awaitable[Outcome]]


def judge_response(response: httpx.Response, expect_codes: set[str] | None = None) -> Outcome:
    """A 4xx, or a response whose every error carries a contract code."""
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    codes: list[str] = []
    if isinstance(payload, dict):
        for entry in payload.get("errors") or []:
            codes.append(str((entry.get("extensions") or {}).get("code", "NO_CODE")))
    detail = f"HTTP {status} {codes or ''}".strip()
    if status >= 500:
        return Outcome(False, detail)
    if 400 <= status < 500 and all(code in CONTRACT_CODES for code in codes):
        ok = expect_codes is None or not codes or bool(set(codes) & expect_codes)
        return Outcome(ok, detail)
    if status == 200 and codes:
        ok = all(code in CONTRACT_CODES for code in codes)
        if expect_codes is not None:
            ok = ok and bool(set(codes) & expect_codes)
        return Outcome(ok, detail)
    return Outcome(status == 200 and expect_codes is None, detail)


def _post(
    body: bytes | str,
    content_type: str = "application/json",
    expect: set[str] | None = None,
    auth: str | None = "valid",
    status: int | None = None,
) -> Probe:
    async def probe(target: Target, http: httpx.AsyncClient) -> Outcome:
        headers = {"Content-Type": content_type}
        if auth == "valid":
            headers["Authorization"] = f"Bearer {target.auth}"
        elif auth is not None:
            headers["Authorization"] = f"Bearer {auth}"
        content = (
            body.replace("$CONVERSATION", target.conversation) if isinstance(body, str) else body
        )
        response = await http.post("/graphql", content=content, headers=headers)
        if status is not None:
            return Outcome(response.status_code == status, f"HTTP {response.status_code}")
        return judge_response(response, expect)

    return probe


def _query(
    query: str, variables: Any = None, expect: set[str] | None = None, **kwargs: Any
) -> Probe:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return _post(json.dumps(body), expect=expect, **kwargs)


def _signed(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _token_probe(raw_token: str) -> Probe:
    return _query("{ me { id } }", auth=raw_token, expect={"UNAUTHENTICATED"})


def _token_probe_any(raw_token: str) -> Probe:
    """A token whose claims may be acceptable: any answer but a crash."""
    return _query("{ me { id } }", auth=raw_token)


def _fragment_fan_out(levels: int) -> str:
    parts = ["fragment F0 on Query { __typename }"]
    for level in range(1, levels + 1):
        parts.append(f"fragment F{level} on Query {{ ...F{level - 1} ...F{level - 1} }}")
    return "query { ...F%d } " % levels + " ".join(parts)


def _nested_list(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _then_normal(first: Probe) -> Probe:
    """The probe, then a normal query on the same HTTP connection."""

    async def probe(target: Target, http: httpx.AsyncClient) -> Outcome:
        outcome = await first(target, http)
        if not outcome.ok:
            return outcome
        follow = await _query("{ me { id } }", expect=None)(target, http)
        return Outcome(
            follow.ok and follow.detail == "HTTP 200", f"{outcome.detail}, then {follow.detail}"
        )

    return probe


def _ws(
    frames: list[str | bytes], init: bool = True, answers: frozenset[str] | set[str] = frozenset()
) -> Probe:
    """Sends frames over graphql-transport-ws; ok when the server closes properly or
    answers every frame with a coded error, and never drops the socket without a close."""

    async def probe(target: Target, http: httpx.AsyncClient) -> Outcome:
        async with websockets.connect(
            target.ws_url,
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            max_size=None,
        ) as ws:
            if init:
                await ws.send(
                    json.dumps(
                        {
                            "type": "connection_init",
                            "payload": {"authorization": f"Bearer {target.auth}"},
                        }
                    )
                )
                await ws.recv()
            for frame in frames:
                await ws.send(frame)
            try:
                reply = await asyncio.wait_for(ws.recv(), 3)
            except websockets.ConnectionClosed as closed:
                # a close frame from the server, not a dropped socket
                code = closed.rcvd.code if closed.rcvd is not None else None
                return Outcome(code in PROPER_CLOSES, f"closed {code}")
            except TimeoutError:
                return Outcome(False, "no answer and no close")
            message = json.loads(reply)
            if message.get("type") == "error":
                codes = {e.get("extensions", {}).get("code") for e in message.get("payload") or []}
                return Outcome(codes <= CONTRACT_CODES, f"error {codes}")
            return Outcome(message.get("type") in answers, f"answered {message.get('type')}")

    return probe


def _subscribe(query: str, variables: Any = None) -> str:
    return json.dumps(
        {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}
    )


#: name -> probe; tests/prove/test_hostile.py marks the ones a known defect still fails
CASES: dict[str, Probe] = {
    # documents
    "fragment fan-out (2^40 fields)": _query(
        _fragment_fan_out(40), expect={"QUERY_TOO_COMPLEX", "GRAPHQL_VALIDATION_FAILED"}
    ),
    "repeated fields x3000": _query(
        "{ " + "__typename " * 3000 + "}", expect={"QUERY_TOO_COMPLEX"}
    ),
    "repeated me { id } x500": _query("{ " + "me { id } " * 500 + "}"),
    "directive flood x1500": _query("{ __typename" + " @skip(if: false)" * 1500 + " }"),
    "aliases x500": _query(
        "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(500)) + " }",
        expect={"QUERY_TOO_COMPLEX"},
    ),
    "selection nested 300 deep": _query(
        "{ " + "me { " * 300 + "id" + " }" * 300 + " }", expect={"QUERY_TOO_COMPLEX"}
    ),
    "list literal nested 600 deep": _query(
        "mutation { createTask(input: {title: %s}) { task { id } } }" % _nested_list(600)
    ),
    "variables nested 5000 deep": _post(
        '{"query": "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }", "variables": {"t": %s}}'
        % _nested_list(5000)
    ),
    "huge list variable (200k items)": _query(
        "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }",
        {"t": list(range(200_000))},
    ),
    "huge string variable (1 MB title)": _query(
        "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }",
        {"t": "x" * 1_000_000},
    ),
    "default value walks the cost limit": _query(
        "query($n: Int = 100) { conversations(first: $n) { edges { node { messages(first: $n) { edges { node { id content } } } } } } }",
        expect={"QUERY_TOO_COMPLEX"},
    ),
    "sibling error, then the next request on that connection": _then_normal(
        _query(
            'query { conversation(id: "$CONVERSATION") { messageCount messages(first: 101) { edges { node { id } } } } }'
        )
    ),
    "subscription over plain HTTP": _query(
        'subscription { messageAdded(conversationId: "x") { id } }'
    ),
    "unknown operation name": _post(
        json.dumps({"query": "{ __typename }", "operationName": "Nope"})
    ),
    "two anonymous operations": _query("{ __typename } { __typename }"),
    "NUL in a title": _query(
        "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }",
        {"t": "a\u0000b"},
    ),
    "lone surrogate in a title": _post(
        '{"query": "mutation { createTask(input: {title: \\"\\ud800\\"}) { task { id } } }"}'
    ),
    # bodies
    "oversized body (5 MB comment)": _post(
        json.dumps({"query": "#" + "x" * 5_000_000 + "\n{ __typename }"}), auth=None, status=413
    ),
    "truncated JSON": _post('{"query": "{ __typename }'),
    "JSON array of numbers": _post("[1, 2, 3]"),
    "query is a number": _post('{"query": 5}'),
    "variables is a string": _post('{"query": "{ __typename }", "variables": "x"}'),
    "empty body": _post(b""),
    "invalid UTF-8 body": _post(b'{"query": "{ __typename \xff\xfe }"}'),
    "UTF-16 body": _post(json.dumps({"query": "{ __typename }"}).encode("utf-16")),
    "deep JSON body (100k arrays)": _post("[" * 100_000 + "]" * 100_000),
    "wrong content type": _post("{ __typename }", content_type="text/plain"),
    # tokens
    "garbage token": _token_probe("not.a.jwt"),
    "alg none": _token_probe(
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(b'{"sub":"x","exp":9999999999}').rstrip(b"=").decode()
        + "."
    ),
    "wrong secret": _token_probe(
        jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "y" * 48, algorithm="HS256")
    ),
    "exp as numeric string": _token_probe_any(
        _signed({"sub": "odd-exp-string", "exp": "9999999999"})
    ),
    "exp 1e300": _token_probe_any(_signed({"sub": "odd-exp-huge", "exp": 1e300})),
    "exp in year 10000": _token_probe_any(_signed({"sub": "odd-exp-10000", "exp": 253402300800})),
    "sub with NUL": _token_probe_any(_signed({"sub": "a\u0000b", "exp": int(time.time()) + 600})),
    "sub empty": _token_probe_any(_signed({"sub": "", "exp": int(time.time()) + 600})),
    "sub a number": _token_probe_any(_signed({"sub": 12345, "exp": int(time.time()) + 600})),
    "sub 100 kB long": _token_probe_any(
        _signed({"sub": "s" * 100_000, "exp": int(time.time()) + 600})
    ),
    "no sub": _token_probe(_signed({"exp": int(time.time()) + 600})),
    # WebSocket frames
    "ws: binary frame": _ws([b"\x00\x01\x02"]),
    "ws: invalid JSON": _ws(["{not json"]),
    "ws: deeply nested JSON": _ws(["[" * 100_000 + "]" * 100_000]),
    "ws: unknown message type": _ws([json.dumps({"type": "bogus"})]),
    "ws: subscribe before init": _ws([_subscribe("subscription { __typename }")], init=False),
    "ws: second connection_init": _ws([json.dumps({"type": "connection_init", "payload": {}})]),
    "ws: 2 MB ping": _ws(
        [json.dumps({"type": "ping", "payload": {"x": "y" * 2_000_000}})], answers={"pong"}
    ),
    "ws: subscribe with fragment fan-out": _ws(
        [
            _subscribe(
                _fragment_fan_out(40)
                .replace("on Query", "on Subscription")
                .replace("query {", "subscription {")
            )
        ]
    ),
}


async def is_healthy(target: Target) -> tuple[bool, str]:
    try:
        async with httpx.AsyncClient(base_url=target.url, timeout=HANG_SECONDS) as http:
            health = await http.get("/health")
            response = await http.post(
                "/graphql",
                json={"query": "{ me { id } conversations(first: 5) { edges { node { id } } } }"},
                headers={"Authorization": f"Bearer {target.auth}"},
            )
            payload = response.json()
    except (httpx.HTTPError, ValueError) as error:
        return False, f"unhealthy: {error!r}"
    ok = health.status_code == 200 and response.status_code == 200 and not payload.get("errors")
    return (
        ok,
        f"health {health.status_code}, query {response.status_code} {payload.get('errors') or ''}",
    )


async def run_case(target: Target, name: str) -> tuple[Outcome, bool, str]:
    """The case's outcome, then whether the server is healthy afterwards."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=target.url, timeout=HANG_SECONDS) as http:
        try:
            outcome = await asyncio.wait_for(CASES[name](target, http), HANG_SECONDS)
        except (TimeoutError, httpx.TimeoutException):
            outcome = Outcome(False, f"no answer within {HANG_SECONDS} s")
        except (httpx.TransportError, websockets.WebSocketException, OSError) as error:
            outcome = Outcome(False, f"connection failed: {error!r}")
    outcome.seconds = time.perf_counter() - started
    healthy, detail = await is_healthy(target)
    return outcome, healthy, detail


async def prepare(server: ServerProcess) -> Target:
    auth = token(f"hostile-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            "/graphql",
            json={
                "query": 'mutation { sendMessage(input: {content: "hello"}) { conversation { id } } }'
            },
            headers={"Authorization": f"Bearer {auth}"},
        )
    conversation = response.json()["data"]["sendMessage"]["conversation"]["id"]
    return Target(server.url, server.ws_url, auth, conversation)


async def main_async() -> int:
    url = await fresh_database()
    failures = 0
    server = await ServerProcess(url).start()
    try:
        target = await prepare(server)
        for name in CASES:
            outcome, healthy, detail = await run_case(target, name)
            slow = outcome.seconds > 1
            verdict = "ok  " if outcome.ok and healthy and not slow else "FAIL"
            failures += verdict == "FAIL"
            print(
                f"{verdict} {outcome.seconds * 1000:7.0f} ms  {name}: {outcome.detail}"
                + ("" if healthy else f"  [{detail}]")
            )
            if not healthy:
                server.signal(9)
                server.wait()
                server = await ServerProcess(url).start()
                target = await prepare(server)
    finally:
        server.stop()
        await drop_database(url)
    print(f"hostile corpus: {len(CASES)} cases, {failures} failed")
    return 1 if failures else 0


def main() -> int:
    return asyncio.run(main_async())


if __name__ == "__main__":
    raise SystemExit(main())
