"""Cursors stay the same bytes across releases: one an older instance issued (a rolling
deploy, a page left open) must still decode, and both read paths must issue the same."""

from __future__ import annotations

import datetime
import uuid

import asyncpg.pgproto.pgproto
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.cursors import CursorCodec
from core.errors import BadUserInput

CODEC = CursorCodec("a-test-secret-of-thirty-two-bytes!")
ROW = uuid.UUID("5bb64e30-0f0a-4275-95c2-6063ae764f26")
#: issued by the release before the encoder was made cheaper
ISSUED = {
    "JmEnbWw4k3Yrr24kWyJjb252ZXJzYXRpb25zIiwic2NvcGUtMSIsWyIyMDI2LTEyLTAyVDE0OjA2OjI3LjU2NjkwOCsw"
    "MDowMCIsIjViYjY0ZTMwLTBmMGEtNDI3NS05NWMyLTYwNjNhZTc2NGYyNiJdXQ": (
        "conversations",
        "scope-1",
        (datetime.datetime(2026, 12, 2, 14, 6, 27, 566908, tzinfo=datetime.UTC), ROW),
    ),
    "haaoxZuzQdH0k9jtWyJtZXNzYWdlcyIsIjViYjY0ZTMwLTBmMGEtNDI3NS05NWMyLTYwNjNhZTc2NGYyNiIsWyIyMDI2"
    "LTEyLTAyVDE0OjA2OjI3KzA1OjMwIiw0Ml1d": (
        "messages",
        str(ROW),
        (
            datetime.datetime(
                2026, 12, 2, 14, 6, 27, tzinfo=datetime.timezone(datetime.timedelta(hours=5.5))
            ),
            42,
        ),
    ),
}


@pytest.mark.parametrize("cursor", list(ISSUED))
def test_a_cursor_an_earlier_release_issued_is_issued_again_and_decodes(cursor: str) -> None:
    kind, scope, key = ISSUED[cursor]
    assert CODEC.encode(kind, scope, list(key)) == cursor  # type: ignore[arg-type]
    types = ["datetime", "uuid" if isinstance(key[1], uuid.UUID) else "int"]
    assert CODEC.decode(cursor, kind, scope, types) == key  # type: ignore[arg-type]


#: what a database hands back: fixed offsets in whole minutes (UTC, from PostgreSQL)
OFFSETS = st.builds(
    datetime.timezone,
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
        lambda minutes: datetime.timedelta(minutes=minutes)
    ),
)


@given(
    moment=st.datetimes(timezones=OFFSETS),
    row=st.uuids(),
    number=st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_every_key_comes_back_as_it_went_in(
    moment: datetime.datetime, row: uuid.UUID, number: int
) -> None:
    cursor = CODEC.encode("tasks", "scope", [moment, row, number])
    assert cursor == CODEC.encode(
        "tasks", "scope", [moment, asyncpg.pgproto.pgproto.UUID(str(row)), number]
    )
    decoded = CODEC.decode(cursor, "tasks", "scope", ["datetime", "uuid", "int"])
    assert decoded == (moment, row, number)
    assert decoded[0].utcoffset() == moment.utcoffset()


def test_a_cursor_signed_with_another_secret_is_refused() -> None:
    cursor = CursorCodec("another-secret-of-thirty-two-bytes").encode("tasks", "s", [1])
    with pytest.raises(BadUserInput):
        CODEC.decode(cursor, "tasks", "s", ["int"])


@given(secret=st.text(min_size=1, max_size=80), payload=st.binary(max_size=300))
def test_the_mac_is_the_standard_librarys_hmac_sha256(secret: str, payload: bytes) -> None:
    import hashlib
    import hmac

    key = hashlib.sha256(b"taskchat-cursor:" + secret.encode()).digest()
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:12]
    assert CursorCodec(secret)._mac(payload) == expected
