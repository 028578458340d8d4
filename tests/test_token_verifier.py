"""The verified-token cache never outlives the token."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.auth import TokenVerifier, create_token
from core.errors import Unauthenticated
from tests.conftest import make_settings


async def test_a_cached_token_is_refused_once_it_expires() -> None:
    settings = make_settings("sqlite+aiosqlite://", jwt_leeway_seconds=0)
    verifier = TokenVerifier(settings)
    token = create_token(settings, "short-lived", timedelta(seconds=1))
    assert (await verifier.verify(token)).subject == "short-lived"
    assert (await verifier.verify(token)).subject == "short-lived"  # served from the cache
    await asyncio.sleep(1.2)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_a_token_signed_with_another_key_is_never_cached_as_valid() -> None:
    settings = make_settings("sqlite+aiosqlite://")
    other = make_settings("sqlite+aiosqlite://", jwt_secret="another-secret-" + "y" * 40)
    verifier = TokenVerifier(settings)
    forged = create_token(other, "mallory", timedelta(hours=1))
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await verifier.verify(forged)
