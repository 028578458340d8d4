"""A compiled plan leaves datetimes for orjson to write (in C): the bytes must be the
DateTime scalar's, whatever datetime it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from web.compiled import _isoformat


class _Subclass(datetime):
    """orjson writes only datetimes of the class itself: this one comes to `default`."""


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 3, 14, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 14, 0, 0, tzinfo=UTC),  # no microseconds: none written
        datetime(2026, 12, 3, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        _Subclass(2026, 12, 3, 14, 0, 0, 7, tzinfo=UTC),
    ],
)
def test_datetimes_are_written_as_the_scalar_writes_them(value: datetime) -> None:
    written = orjson.dumps({"data": {"at": value}}, default=_isoformat)
    assert orjson.loads(written) == {"data": {"at": value.isoformat()}}


def test_anything_else_orjson_refuses_stays_an_error() -> None:
    with pytest.raises(TypeError):
        orjson.dumps({"data": object()}, default=_isoformat)
