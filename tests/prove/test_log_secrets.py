"""A full server run's logs never contain the JWT secret, a bearer token or the model's
API key: a real server process at debug level, traffic that succeeds and fails (a model
error, a bad token, an expired one, a WebSocket), every log line captured."""

from __future__ import annotations

import contextlib
import json
import signal
import uuid
from datetime import timedelta

import httpx
import jwt
import websockets

from prove.common import SECRET, ServerProcess, drop_database, fresh_database, token
from tests.standin.groq_standin import GroqStandIn, error, text

API_KEY = "gsk_canary_" + uuid.uuid4().hex
SEND = "mutation($c: String!) { sendMessage(input: {content: $c}) { message { content } } }"


async def _post(
    http: httpx.AsyncClient, bearer: str, query: str, **variables: str
) -> httpx.Response:
    return await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}"},
    )


async def test_logs_hold_no_secret_token_or_api_key() -> None:
    url = await fresh_database()
    good = token(f"logs-{uuid.uuid4().hex[:8]}")
    expired = token("logs-expired", ttl=timedelta(seconds=-120))
    forged = jwt.encode({"sub": "logs-forged", "exp": 9_999_999_999}, "f" * 48, algorithm="HS256")
    try:
        with GroqStandIn(expected_api_key=API_KEY) as standin:
            env = {
                "AGENT_PROVIDER": "groq",
                "GROQ_API_KEY": API_KEY,
                "GROQ_BASE_URL": standin.base_url,
                "LOG_LEVEL": "debug",
                "ENVIRONMENT": "production",
            }
            server = await ServerProcess(url, env).start()
            try:
                standin.script(text("Hello."), error(500), error(500), error(500), error(401))
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                    ok = await _post(http, good, SEND, c="hi")
                    assert ok.json()["data"]["sendMessage"]["message"]["content"] == "Hello."
                    failed = await _post(http, good, SEND, c="this one fails")
                    assert failed.json()["errors"][0]["extensions"]["code"] == "AGENT_UNAVAILABLE"
                    for bad in (forged, expired, good + "x", "not-a-jwt"):
                        refused = await _post(http, bad, "{ me { id } }")
                        assert refused.status_code == 401
                    assert (await _post(http, good, "{ nope }")).status_code == 200
                async with websockets.connect(
                    server.ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
                ) as ws:
                    await ws.send(
                        json.dumps(
                            {
                                "type": "connection_init",
                                "payload": {"authorization": f"Bearer {good}"},
                            }
                        )
                    )
                    assert json.loads(await ws.recv())["type"] == "connection_ack"
                async with websockets.connect(
                    server.ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
                ) as ws:
                    await ws.send(
                        json.dumps(
                            {
                                "type": "connection_init",
                                "payload": {"authorization": f"Bearer {forged}"},
                            }
                        )
                    )
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await ws.recv()
            finally:
                server.signal(signal.SIGTERM)
                server.wait()
    finally:
        await drop_database(url)
    logs = server.logs()
    # the run did log: operations, the model failure and the refused tokens
    assert "graphql operation" in logs, logs[-2000:]
    assert "AGENT_UNAVAILABLE" in logs, logs[-2000:]
    for name, secret in {
        "JWT secret": SECRET,
        "API key": API_KEY,
        "bearer token": good,
        "token signature": good.rsplit(".", 1)[1],
        "expired token": expired,
        "forged token": forged,
    }.items():
        assert secret not in logs, f"the {name} is in the logs"
