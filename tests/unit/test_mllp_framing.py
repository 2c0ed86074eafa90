"""MLLP framing on bytes: golden frames, junk, oversize, arbitrary read splits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.mllp.framing import (
    FS_CR,
    VT,
    DecoderEvent,
    Frame,
    FrameDecoder,
    Junk,
    Oversize,
    frame,
)

MSG = b"MSH|^~\\&|LIS|RMYY|||20240115||ORU^R01|M1|P|2.4\rPID|1||P1\r"


def feed_all(decoder: FrameDecoder, *chunks: bytes) -> list[DecoderEvent]:
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_frame_golden_bytes() -> None:
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"
    assert (VT, FS_CR) == (b"\x0b", b"\x1c\r")


@pytest.mark.parametrize("payload", [b"a\x0bb", b"a\x1cb"])
def test_frame_refuses_framing_bytes(payload: bytes) -> None:
    with pytest.raises(ValueError, match="VT or FS"):
        frame(payload)


@pytest.mark.parametrize(
    ("chunks", "events"),
    [
        ([frame(MSG)], [Frame(MSG)]),
        ([frame(b"a") + frame(b"b")], [Frame(b"a"), Frame(b"b")]),
        ([b"\x0bpart", b"ial\x1c", b"\r"], [Frame(b"partial")]),
        ([b"\x0bno cr\x1c", b"\x0bnext\x1c\r"], [Frame(b"no cr"), Frame(b"next")]),
        ([b"\x0b\x1c\r"], [Frame(b"")]),
        ([b"\r\n" + frame(b"a")], [Junk(2), Frame(b"a")]),
        ([frame(b"a") + b"xyz", frame(b"b")], [Frame(b"a"), Junk(3), Frame(b"b")]),
        ([b"junk only"], [Junk(9)]),
        ([b"\x0bcut off", b"\x0bfresh\x1c\r"], [Junk(8), Frame(b"fresh")]),
        ([b"\x0bcut\x0bfresh\x1c\r"], [Junk(4), Frame(b"fresh")]),
        ([b"\x0bhalf"], []),
    ],
)
def test_decoder_cases(chunks: list[bytes], events: list[DecoderEvent]) -> None:
    assert feed_all(FrameDecoder(1000), *chunks) == events


def test_frame_is_complete_at_fs_without_waiting_for_cr() -> None:
    decoder = FrameDecoder(100)
    assert decoder.feed(b"\x0bmsg\x1c") == [Frame(b"msg")]
    assert decoder.feed(b"\r") == []  # its CR, arriving late, is not junk
    assert decoder.pending == 0


def test_pending_counts_an_unfinished_frame() -> None:
    decoder = FrameDecoder(100)
    decoder.feed(b"\x0bhalf a mess")
    assert decoder.pending == 11


def test_oversize_is_reported_once_and_not_buffered() -> None:
    decoder = FrameDecoder(10)
    events = feed_all(decoder, b"\x0b" + b"MSH|12345", b"6789", b"x" * 10_000)
    assert events == [Oversize(10, b"MSH|123456789")]
    assert decoder.pending <= 10
    assert feed_all(decoder, b"tail\x1c\r", frame(b"ok")) == [Frame(b"ok")]


def test_oversize_head_is_capped() -> None:
    events = FrameDecoder(2000).feed(b"\x0b" + b"A" * 5000)
    assert len(events) == 1 and isinstance(events[0], Oversize)
    assert events[0].head == b"A" * 1024


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    assert FrameDecoder(3).feed(frame(b"abc")) == [Frame(b"abc")]
    assert FrameDecoder(3).feed(frame(b"abcd"))[0] == Oversize(3, b"abcd")


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FrameDecoder(0)


payloads = st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(
    b"\x1c", b"")), max_size=8)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(payloads, st.lists(st.integers(min_value=0), max_size=20))
def test_any_payloads_in_any_chunks_round_trip(items: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in items)
    events = feed_all(FrameDecoder(300), *split(stream, cuts))
    assert events == [Frame(p) for p in items]


@given(payloads, st.lists(st.binary(min_size=1, max_size=20).filter(
    lambda b: b"\x0b" not in b and b"\x1c" not in b and not b.startswith(b"\r"))),
    st.lists(st.integers(min_value=0), max_size=20))
def test_junk_between_frames_is_counted_not_fatal(items: list[bytes], junk: list[bytes],
                                                  cuts: list[int]) -> None:
    pieces = [frame(p) + (junk[i] if i < len(junk) else b"") for i, p in enumerate(items)]
    events = feed_all(FrameDecoder(300), *split(b"".join(pieces), cuts))
    assert [e for e in events if isinstance(e, Frame)] == [Frame(p) for p in items]
    junk_sent = sum(len(j) for j in junk[: len(items)])
    assert sum(e.size for e in events if isinstance(e, Junk)) == junk_sent


def test_in_frame_and_partial_head_describe_an_unfinished_frame() -> None:
    decoder = FrameDecoder(10_000)
    assert not decoder.in_frame
    decoder.feed(b"\x0bMSH|^~\\&|" + b"x" * 2000)
    assert decoder.in_frame and decoder.partial_head() == (b"MSH|^~\\&|" + b"x" * 2000)[:1024]
    decoder.feed(b"\x1c\r")
    assert not decoder.in_frame
