"""Bearer-token verification (HS256 shared secret or a JWKS) and development tokens."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cachetools import TTLCache

from core.config import Settings
from core.errors import Unauthenticated

VERIFIED_TOKEN_CACHE_SIZE = 10_000
VERIFIED_TOKEN_TTL_SECONDS = 300
#: how long a key fetched from the JWKS is used before it is fetched again
JWKS_KEY_TTL_SECONDS = 300
JWKS_KEYS_CACHED = 64
SECRET_ALGORITHMS = ["HS256"]
JWKS_ALGORITHMS = ["RS256", "ES256", "EdDSA"]
_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    expires_at: datetime


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jwks: jwt.PyJWKClient | None = None
        #: kid → signing key: a known kid costs no thread hop into PyJWKClient
        self._signing_keys: TTLCache[str, jwt.PyJWK] = TTLCache(
            maxsize=JWKS_KEYS_CACHED, ttl=JWKS_KEY_TTL_SECONDS
        )
        if settings.jwks_url:
            self._jwks = jwt.PyJWKClient(
                settings.jwks_url, cache_keys=True, lifespan=JWKS_KEY_TTL_SECONDS
            )
            self._algorithms = JWKS_ALGORITHMS
        else:
            self._secret = settings.signing_secret
            self._algorithms = SECRET_ALGORITHMS
        # A verified token, by its exact text: skips the signature check on the next
        # requests (the expiry is still checked each time; entries are re-verified after a
        # few minutes, so a key withdrawn from the JWKS stops working soon after).
        self._verified: TTLCache[str, Principal] = TTLCache(
            maxsize=VERIFIED_TOKEN_CACHE_SIZE, ttl=VERIFIED_TOKEN_TTL_SECONDS
        )

    async def verify_header(self, authorization: str) -> Principal:
        match = _BEARER.match(authorization)
        if match is None:
            raise Unauthenticated("the authorization header must be 'Bearer <token>'")
        return await self.verify(match.group(1))

    async def verify(self, token: str) -> Principal:
        principal = self._verified.get(token)
        if principal is not None:
            leeway = timedelta(seconds=self._settings.jwt_leeway_seconds)
            if datetime.now(UTC) < principal.expires_at + leeway:
                return principal
            del self._verified[token]
        principal = await self._verify(token)
        self._verified[token] = principal
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            key = await self._key_for(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_seconds,
                options={
                    "require": ["sub", "exp"],
                    "verify_aud": bool(self._settings.jwt_audience),
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except (jwt.PyJWTError, ValueError):
            raise Unauthenticated("invalid token") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not _PLAIN_SUBJECT.fullmatch(subject):
            raise Unauthenticated("invalid token subject")
        return Principal(subject, _expiry(claims["exp"]))

    async def _key_for(self, token: str) -> Any:
        """The secret, or the JWK itself: a JWK binds its algorithm, so a token whose
        `alg` does not fit the key is refused instead of crashing the key preparation."""
        if self._jwks is None:
            return self._secret
        kid = jwt.get_unverified_header(token).get("kid")
        if isinstance(kid, str) and (known := self._signing_keys.get(kid)) is not None:
            return known
        # unknown kid (first use, or the issuer rotated keys): PyJWKClient fetches (with
        # its own cool-down between fetches), off the event loop
        try:
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientError as error:
            raise jwt.InvalidTokenError(str(error)) from None
        if isinstance(kid, str):
            self._signing_keys[kid] = signing_key
        return signing_key


#: a subject is stored as a user's key: printable, no control characters (PostgreSQL
#: text cannot hold NUL), at most 255 characters
_PLAIN_SUBJECT = re.compile(r"[^\x00-\x1f\x7f]{1,255}")


def _expiry(exp: object) -> datetime:
    """`exp` as a datetime; PyJWT accepts anything int() takes (a numeric string, 1e300),
    which is no expiry a datetime can hold."""
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthenticated("invalid token expiry")
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        raise Unauthenticated("invalid token expiry") from None


def parse_ttl(text: str) -> timedelta:
    """'90s', '15m', '1h', '7d' → timedelta."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match is None:
        raise ValueError("ttl looks like 90s, 15m, 1h or 7d")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(seconds=amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def create_token(settings: Settings, subject: str, ttl: timedelta) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.signing_secret, algorithm="HS256")
