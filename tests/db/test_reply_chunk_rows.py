"""A reply's stream as rows (db/reply_chunks.py): runs of consecutive text pieces packed
into one row, tool calls apart; unpacked after any position, exactly the entries numbered
after it, whatever the text (code points, not bytes)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from db.models import ReplyChunk
from db.reply_chunks import ChunkRow, Entry, pack, unpack


@st.composite
def streams(draw: st.DrawFn) -> list[Entry]:
    """A numbered stream as a turn writes it: text pieces (never empty) and tool calls,
    offsets advancing with the text."""
    entries: list[Entry] = []
    offset = 0
    for sequence in range(1, draw(st.integers(0, 30)) + 1):
        if draw(st.booleans()) and draw(st.booleans()):
            entries.append((sequence, offset, "", {"id": f"call_{sequence}", "n": [1, None]}))
            continue
        piece = draw(st.text(min_size=1, max_size=6))
        entries.append((sequence, offset, piece, None))
        offset += len(piece)
    return entries


def _stored(rows: list[ChunkRow]) -> list[ReplyChunk]:
    message_id = uuid.uuid4()
    return [
        ReplyChunk(
            message_id=message_id,
            sequence=sequence,
            text_offset=offset,
            text=text,
            tool_call=tool_call,
            pieces=pieces,
        )
        for sequence, offset, text, tool_call, pieces in rows
    ]


@given(streams(), st.data())
def test_a_stream_unpacks_as_it_was_numbered_after_any_position(
    entries: list[Entry], data: st.DataObject
) -> None:
    rows = pack(entries)
    after = data.draw(st.integers(0, len(entries) + 1))
    assert unpack(_stored(rows), after) == [entry for entry in entries if entry[0] > after]
    # a row's sequence is its last entry's: rows are in order and keyed uniquely
    assert [row[0] for row in rows] == sorted({row[0] for row in rows})


@given(streams())
def test_a_row_holds_one_run_of_text_or_one_tool_call(entries: list[Entry]) -> None:
    rows = pack(entries)
    runs = sum(
        1
        for i, entry in enumerate(entries)
        if entry[3] is None and (i == 0 or entries[i - 1][3] is not None)
    )
    calls = sum(1 for entry in entries if entry[3] is not None)
    assert len(rows) == runs + calls


def test_pieces_not_one_after_another_are_not_packed_together() -> None:
    """A gap in the numbering or the offsets (entries of two batches) starts a new row."""
    entries: list[Entry] = [(1, 0, "a", None), (3, 1, "b", None), (4, 5, "c", None)]
    assert pack(entries) == [
        (1, 0, "a", None, None),
        (3, 1, "b", None, None),
        (4, 5, "c", None, None),
    ]
    assert pack([(1, 0, "ab", None), (2, 2, "🎉", None)]) == [(2, 0, "ab🎉", None, [2, 1])]
