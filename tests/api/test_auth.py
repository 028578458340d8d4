"""Authentication over HTTP, as API.md promises it: a shared HS256 secret or a JWKS, an
allow-list of algorithms, `sub` and `exp` required, `aud`/`iss` when configured, a small
clock leeway, and 401 + `UNAUTHENTICATED` (with nothing of anyone's data) for a bad token.

WebSocket authentication is tested with the subscriptions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from core.config import ConfigError, Settings
from core.ids import to_global_id
from tests.conftest import ROOT, TEST_SECRET, LiveServer, ServerFactory, token_for

ME = "{ me { id } }"
OTHER_SECRET = "another-secret-" + "y" * 25  # 40 bytes, like a real key, but not ours


# --- helpers ---------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_json(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _claims(subject: str, ttl: timedelta = timedelta(hours=1), **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"sub": subject, "iat": now, "exp": now + ttl, **extra}


def _hs256(claims: dict[str, Any], secret: str = TEST_SECRET, **headers: Any) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def _hand_signed_hs256(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """HS256 by hand, for keys PyJWT rightly refuses to use as an HMAC secret."""
    signing_input = f"{_b64url_json(header)}.{_b64url_json(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _future_exp() -> int:
    return int((datetime.now(UTC) + timedelta(hours=1)).timestamp())


async def _post(server: LiveServer, authorization: str | None, query: str = ME) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return await server.client().http.post("/graphql", json={"query": query}, headers=headers)


REFUSED = (401, None, ["UNAUTHENTICATED"])


def _outcome(response: httpx.Response) -> tuple[int, Any, list[str]]:
    """(status, data, error codes): what a client sees, comparable across many cases."""
    try:
        payload = response.json()
    except ValueError:  # not even JSON: show what came instead
        return response.status_code, response.text, []
    codes = [error["extensions"]["code"] for error in payload.get("errors") or []]
    return response.status_code, payload.get("data"), codes


def _assert_unauthenticated(response: httpx.Response, *must_not_leak: str) -> None:
    assert response.status_code == 401, response.text
    payload = response.json()
    assert payload["data"] is None
    assert [error["extensions"]["code"] for error in payload["errors"]] == ["UNAUTHENTICATED"]
    for secret in must_not_leak:
        assert secret not in response.text


@dataclass(frozen=True)
class Victim:
    """A user with data, whose subject the forged tokens below claim."""

    subject: str
    user_id: str
    task_title: str


@pytest.fixture
async def victim(server: LiveServer) -> Victim:
    subject = f"victim-{uuid.uuid4()}"
    client = server.client(token_for(subject))
    task_title = f"victim's secret {uuid.uuid4()}"
    await client.data(
        "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }",
        {"t": task_title},
    )
    me = await client.data(ME)
    return Victim(subject, me["me"]["id"], task_title)


LEAKY_QUERY = "{ me { id } tasks { edges { node { title } } } }"


# --- shared-secret mode ----------------------------------------------------------------


def _signed_with_another_secret(subject: str) -> str:
    return "Bearer " + _hs256(_claims(subject), OTHER_SECRET)


def _alg_none(subject: str) -> str:
    header = _b64url_json({"alg": "none", "typ": "JWT"})
    return f"Bearer {header}.{_b64url_json({'sub': subject, 'exp': _future_exp()})}."


def _expired_beyond_leeway(subject: str) -> str:
    return "Bearer " + _hs256(_claims(subject, ttl=timedelta(seconds=-120)))


def _not_yet_valid(subject: str) -> str:
    not_before = datetime.now(UTC) + timedelta(minutes=10)
    return "Bearer " + _hs256(_claims(subject, nbf=not_before))


def _without_sub(subject: str) -> str:
    claims = _claims(subject)
    del claims["sub"]
    return "Bearer " + _hs256(claims)


def _without_exp(subject: str) -> str:
    claims = _claims(subject)
    del claims["exp"]
    return "Bearer " + _hs256(claims)


def _with_sub(value: Any) -> Callable[[str], str]:
    def make(subject: str) -> str:
        return "Bearer " + _hs256({**_claims(subject), "sub": value})

    return make


def _exp_not_a_number(subject: str) -> str:
    return "Bearer " + _hs256({**_claims(subject), "exp": "tomorrow"})


def _tampered_sub(subject: str) -> str:
    """A valid token of another user whose payload is edited to claim the victim."""
    header, payload, signature = token_for(f"mallory-{uuid.uuid4()}").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = subject
    return f"Bearer {header}.{_b64url_json(claims)}.{signature}"


BAD_AUTHORIZATIONS: dict[str, Callable[[str], str]] = {
    "signed_with_another_secret": _signed_with_another_secret,
    "alg_none": _alg_none,
    "expired_beyond_leeway": _expired_beyond_leeway,
    "not_yet_valid": _not_yet_valid,
    "without_sub": _without_sub,
    "without_exp": _without_exp,
    "empty_sub": _with_sub(""),
    "numeric_sub": _with_sub(12345),
    "sub_longer_than_255": _with_sub("s" * 256),
    "exp_not_a_number": _exp_not_a_number,
    "tampered_sub": _tampered_sub,
    "garbage_abc": lambda _: "Bearer abc",
    "garbage_three_segments": lambda _: "Bearer a.b.c",
    "basic_scheme": lambda _: "Basic xyz",
    "bearer_without_token": lambda _: "Bearer",
}


@pytest.mark.parametrize("make_authorization", BAD_AUTHORIZATIONS.values(), ids=BAD_AUTHORIZATIONS)
async def test_bad_token_is_401_unauthenticated_and_leaks_nothing(
    server: LiveServer, victim: Victim, make_authorization: Callable[[str], str]
) -> None:
    response = await _post(server, make_authorization(victim.subject), LEAKY_QUERY)
    _assert_unauthenticated(response, victim.user_id, victim.task_title)


async def test_bad_token_on_a_mutation_changes_nothing(server: LiveServer, victim: Victim) -> None:
    response = await _post(
        server,
        _tampered_sub(victim.subject),
        'mutation { createTask(input: {title: "planted"}) { task { id } } }',
    )
    _assert_unauthenticated(response)
    tasks = await server.client(token_for(victim.subject)).data(
        "{ tasks { totalCount edges { node { title } } } }"
    )
    assert tasks["tasks"]["totalCount"] == 1
    assert [edge["node"]["title"] for edge in tasks["tasks"]["edges"]] == [victim.task_title]


async def test_valid_token_reaches_its_own_user(server: LiveServer, victim: Victim) -> None:
    response = await _post(server, "Bearer " + token_for(victim.subject), LEAKY_QUERY)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["me"]["id"] == victim.user_id
    assert [edge["node"]["title"] for edge in data["tasks"]["edges"]] == [victim.task_title]


async def test_bearer_scheme_is_case_insensitive(server: LiveServer, victim: Victim) -> None:
    response = await _post(server, "bearer " + token_for(victim.subject))
    assert response.status_code == 200
    assert response.json()["data"]["me"]["id"] == victim.user_id


async def test_token_expired_within_the_clock_leeway_is_accepted(server: LiveServer) -> None:
    subject = f"user-{uuid.uuid4()}"
    response = await _post(server, "Bearer " + _hs256(_claims(subject, ttl=timedelta(seconds=-5))))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["me"]["id"]


async def test_request_without_token_gets_unauthenticated_for_user_data(server: LiveServer) -> None:
    response = await _post(server, None, ME)
    assert response.status_code == 200
    payload = response.json()
    assert payload["data"] is None
    assert payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


_SOME_CONVERSATION_ID = to_global_id("Conversation", uuid.UUID(int=1))
ANONYMOUS_QUERIES = {
    "tasks": "{ tasks { totalCount } }",
    "conversations": "{ conversations { totalCount } }",
    "conversation": f'{{ conversation(id: "{_SOME_CONVERSATION_ID}") {{ id }} }}',
    "task": f'{{ task(id: "{to_global_id("Task", uuid.UUID(int=1))}") {{ id }} }}',
    "node": f'{{ node(id: "{_SOME_CONVERSATION_ID}") {{ id }} }}',
    "createTask": 'mutation { createTask(input: {title: "anonymous"}) { task { id } } }',
    "createConversation": (
        'mutation { createConversation(input: {title: "anonymous"}) { conversation { id } } }'
    ),
}


@pytest.mark.parametrize("query", ANONYMOUS_QUERIES.values(), ids=ANONYMOUS_QUERIES)
async def test_every_user_data_field_answers_unauthenticated_without_token(
    server: LiveServer, query: str
) -> None:
    response = await _post(server, None, query)
    payload = response.json()
    assert response.status_code == 200
    # a nullable root field is answered null, a non-null one nulls the whole data
    assert not any((payload["data"] or {}).values())
    assert [error["extensions"]["code"] for error in payload["errors"]] == ["UNAUTHENTICATED"]


async def test_anonymous_introspection_works(server: LiveServer) -> None:
    response = await _post(server, None, "{ __schema { queryType { name } } }")
    assert response.status_code == 200
    assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


# --- audience and issuer ---------------------------------------------------------------

AUDIENCE = "taskchat"
ISSUER = "https://issuer.test"


@pytest.fixture
async def aud_iss_server(server_factory: ServerFactory) -> LiveServer:
    return await server_factory(jwt_audience=AUDIENCE, jwt_issuer=ISSUER)


async def test_audience_and_issuer_are_checked_when_configured(aud_iss_server: LiveServer) -> None:
    claims_by_case: dict[str, dict[str, Any]] = {
        "wrong_aud": {"aud": "someone-else", "iss": ISSUER},
        "wrong_iss": {"aud": AUDIENCE, "iss": "https://evil.test"},
        "missing_aud": {"iss": ISSUER},
        "missing_iss": {"aud": AUDIENCE},
    }
    outcomes = {}
    for case, claims in claims_by_case.items():
        token = _hs256(_claims(f"user-{uuid.uuid4()}", **claims))
        outcomes[case] = _outcome(await _post(aud_iss_server, f"Bearer {token}"))
    assert outcomes == dict.fromkeys(claims_by_case, REFUSED)


async def test_token_with_configured_audience_and_issuer_is_accepted(
    aud_iss_server: LiveServer,
) -> None:
    token = _hs256(_claims(f"user-{uuid.uuid4()}", aud=AUDIENCE, iss=ISSUER))
    response = await _post(aud_iss_server, f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["me"]["id"]


# --- JWKS mode -------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: Any
    jwk: dict[str, Any]

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(
            claims, self.private_key, algorithm=self.algorithm, headers={"kid": self.kid, **headers}
        )


def _signing_key(algorithm: str, kid: str | None = None) -> SigningKey:
    kid = kid or f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}"
    if algorithm == "RS256":
        private_key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    elif algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        private_key = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return SigningKey(kid, algorithm, private_key, {**jwk, "kid": kid, "use": "sig"})


@cache
def _served_keys() -> dict[str, SigningKey]:
    """Generated once per run: RSA key generation is the slow part of these tests."""
    return {algorithm: _signing_key(algorithm) for algorithm in ("RS256", "ES256", "EdDSA")}


class JwksEndpoint:
    """A JWKS document served over HTTP on 127.0.0.1; `keys` can change while it runs."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.fetches += 1
                body = json.dumps({"keys": endpoint.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/.well-known/jwks.json"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def jwks() -> Iterator[JwksEndpoint]:
    endpoint = JwksEndpoint([key.jwk for key in _served_keys().values()])
    yield endpoint
    endpoint.close()


@pytest.fixture
async def jwks_server(server_factory: ServerFactory, jwks: JwksEndpoint) -> LiveServer:
    return await server_factory(jwks_url=jwks.url, jwt_secret=None)


def _allow_immediate_jwks_refresh(live: LiveServer) -> None:
    """PyJWT (>= 2.13) refetches a JWKS for an unknown kid only when `cooldown_duration`
    (30 s) has passed since the last fetch. A test cannot wait that out, so this server's
    JWKS client gets no cooldown, as if the rotation happened 30 s after the last fetch."""
    app = live.server.config.app
    assert isinstance(app, FastAPI)
    jwks_client = app.state.resources.verifier._jwks
    assert jwks_client is not None
    jwks_client.cooldown_duration = 0


async def test_jwks_tokens_signed_with_each_listed_key_are_accepted(
    jwks_server: LiveServer,
) -> None:
    user_ids = {}
    for algorithm, key in _served_keys().items():
        response = await _post(
            jwks_server, "Bearer " + key.sign(_claims(f"user-{algorithm}-{uuid.uuid4()}"))
        )
        assert response.status_code == 200, (algorithm, response.text)
        user_ids[algorithm] = response.json()["data"]["me"]["id"]
    assert all(user_ids.values())
    assert len(set(user_ids.values())) == 3


def _rsa_public_pem() -> bytes:
    public_key = _served_keys()["RS256"].private_key.public_key()
    pem: bytes = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def _jwks_unknown_kid(subject: str) -> str:
    return _signing_key("RS256", kid="never-published").sign(_claims(subject))


def _jwks_listed_kid_but_other_key(subject: str) -> str:
    return _signing_key("RS256", kid=_served_keys()["RS256"].kid).sign(_claims(subject))


def _jwks_without_kid(subject: str) -> str:
    served = _served_keys()["RS256"]
    return jwt.encode(_claims(subject), served.private_key, algorithm="RS256")


def _jwks_hs256_with_a_secret(subject: str) -> str:
    return _hs256(_claims(subject), TEST_SECRET, kid=_served_keys()["RS256"].kid)


def _jwks_hs256_keyed_with_the_rsa_public_key(subject: str) -> str:
    """Algorithm confusion: HMAC keyed with the public key text everybody can fetch."""
    header = {"alg": "HS256", "typ": "JWT", "kid": _served_keys()["RS256"].kid}
    payload = {"sub": subject, "exp": _future_exp()}
    return _hand_signed_hs256(header, payload, _rsa_public_pem())


def _jwks_alg_none(subject: str) -> str:
    header = _b64url_json({"alg": "none", "typ": "JWT", "kid": _served_keys()["RS256"].kid})
    return f"{header}.{_b64url_json({'sub': subject, 'exp': _future_exp()})}."


def _jwks_expired(subject: str) -> str:
    return _served_keys()["ES256"].sign(_claims(subject, ttl=timedelta(seconds=-120)))


def _jwks_without_sub(subject: str) -> str:
    claims = _claims(subject)
    del claims["sub"]
    return _served_keys()["EdDSA"].sign(claims)


def _jwks_rs256_under_the_ec_kid(subject: str) -> str:
    """The kid names the EC key, the header claims RS256: the key type does not fit."""
    return _signing_key("RS256", kid=_served_keys()["ES256"].kid).sign(_claims(subject))


def _jwks_es256_under_the_eddsa_kid(subject: str) -> str:
    return _signing_key("ES256", kid=_served_keys()["EdDSA"].kid).sign(_claims(subject))


BAD_JWKS_TOKENS: dict[str, Callable[[str], str]] = {
    "unknown_kid": _jwks_unknown_kid,
    "listed_kid_but_other_key": _jwks_listed_kid_but_other_key,
    "without_kid": _jwks_without_kid,
    "hs256_with_a_secret": _jwks_hs256_with_a_secret,
    "hs256_keyed_with_the_rsa_public_key": _jwks_hs256_keyed_with_the_rsa_public_key,
    "alg_none": _jwks_alg_none,
    "expired": _jwks_expired,
    "without_sub": _jwks_without_sub,
}


async def test_jwks_mode_refuses_tokens_it_cannot_verify(jwks_server: LiveServer) -> None:
    subject = f"user-{uuid.uuid4()}"
    # the JWKS is cached first, so refusals do not come from a cold cache
    warm = await _post(jwks_server, "Bearer " + _served_keys()["RS256"].sign(_claims(subject)))
    assert warm.status_code == 200, warm.text
    outcomes = {}
    for case, make_token in BAD_JWKS_TOKENS.items():
        response = await _post(jwks_server, f"Bearer {make_token(subject)}", LEAKY_QUERY)
        assert subject not in response.text
        outcomes[case] = _outcome(response)
    assert outcomes == dict.fromkeys(BAD_JWKS_TOKENS, REFUSED)


async def test_jwks_token_whose_alg_does_not_fit_the_kids_key_is_401_not_500(
    jwks_server: LiveServer,
) -> None:
    """Regression: the key type check of PyJWT raised TypeError, answered as a bare 500."""
    subject = f"user-{uuid.uuid4()}"
    outcomes = {
        "rs256_under_the_ec_kid": _outcome(
            await _post(jwks_server, f"Bearer {_jwks_rs256_under_the_ec_kid(subject)}")
        ),
        "es256_under_the_eddsa_kid": _outcome(
            await _post(jwks_server, f"Bearer {_jwks_es256_under_the_eddsa_kid(subject)}")
        ),
    }
    assert outcomes == dict.fromkeys(outcomes, REFUSED)


async def test_jwks_key_rotation_new_kid_is_fetched_and_accepted(
    jwks_server: LiveServer, jwks: JwksEndpoint
) -> None:
    subject = f"user-{uuid.uuid4()}"
    before = await _post(jwks_server, "Bearer " + _served_keys()["RS256"].sign(_claims(subject)))
    assert before.status_code == 200, before.text
    assert jwks.fetches == 1

    _allow_immediate_jwks_refresh(jwks_server)
    rotated = _signing_key("RS256", kid="rotated-in")
    jwks.keys = [*jwks.keys, rotated.jwk]
    after = await _post(jwks_server, "Bearer " + rotated.sign(_claims(subject)))

    assert after.status_code == 200, after.text
    assert after.json()["data"]["me"]["id"] == before.json()["data"]["me"]["id"]
    assert jwks.fetches == 2


async def test_jwks_unknown_kids_do_not_refetch_within_the_cooldown(
    jwks_server: LiveServer, jwks: JwksEndpoint
) -> None:
    """A flood of made-up kids must not turn the server into a JWKS-endpoint hammer."""
    subject = f"user-{uuid.uuid4()}"
    warm = await _post(jwks_server, "Bearer " + _served_keys()["ES256"].sign(_claims(subject)))
    assert warm.status_code == 200, warm.text
    for attempt in range(3):
        token = _signing_key("ES256", kid=f"made-up-{attempt}").sign(_claims(subject))
        _assert_unauthenticated(await _post(jwks_server, f"Bearer {token}"))
    assert jwks.fetches == 1


async def test_jwks_known_kid_is_served_from_the_cache(
    jwks_server: LiveServer, jwks: JwksEndpoint
) -> None:
    for algorithm in ("RS256", "ES256", "EdDSA", "RS256"):
        token = _served_keys()[algorithm].sign(_claims(f"user-{uuid.uuid4()}"))
        assert (await _post(jwks_server, f"Bearer {token}")).status_code == 200
    assert jwks.fetches == 1


# --- configuration rules (no server) ---------------------------------------------------


def test_production_without_any_jwt_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="production requires"):
        Settings(_env_file=None, environment="production", jwt_secret=None, jwks_url=None)  # type: ignore[call-arg]


def test_secret_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Settings(_env_file=None, environment="production", jwt_secret="s" * 31)  # type: ignore[call-arg]


def test_production_with_a_32_byte_secret_or_a_jwks_url_is_accepted() -> None:
    with_secret = Settings(_env_file=None, environment="production", jwt_secret="s" * 32)  # type: ignore[call-arg]
    with_jwks = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        jwt_secret=None,
        jwks_url="https://issuer.test/jwks",
    )
    assert with_secret.signing_secret == "s" * 32
    assert with_jwks.jwks_url == "https://issuer.test/jwks"


def test_cli_token_command_signs_a_token_for_the_subject_with_the_ttl() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "JWKS_URL"}}
    env["JWT_SECRET"] = TEST_SECRET
    result = subprocess.run(
        [sys.executable, "main.py", "token", "alice", "--ttl", "15m"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 15 * 60
    remaining = claims["exp"] - datetime.now(UTC).timestamp()
    assert 14 * 60 < remaining <= 15 * 60 + 1
