"""Bad input, MLLP framing: any byte stream, split anywhere, against a byte-at-a-time model.

The decoder is what stands between a socket and memory. Whatever arrives, it must
never raise, never hold more than the frame limit, and find the same frames and
framing events however the reads happen to split the stream. The model below
reads the whole stream one byte at a time, written from the framing rules in
``connectors/mllp/framing.py``, not from its code.
"""

from __future__ import annotations

import itertools

from hypothesis import example, given
from hypothesis import strategies as st

from connectors.mllp.framing import (
    CR,
    FS,
    HEAD_BYTES,
    VT,
    DecoderEvent,
    Frame,
    FrameDecoder,
    Junk,
    Oversize,
    frame,
)
from tests.fuzzing import TIMEOUT, fuzzed

pytestmark = TIMEOUT

_VT, _FS, _CR = VT[0], FS[0], CR[0]


def model(stream: bytes, limit: int) -> list[DecoderEvent]:
    """The framing rules, one byte at a time, on the whole stream."""
    events: list[DecoderEvent] = []
    inside = discarding = after_fs = False
    body = bytearray()  # the current frame's bytes so far (kept whole, for the head)
    junk = 0

    def flush() -> None:
        nonlocal junk
        if junk:
            events.append(Junk(junk))
            junk = 0

    for byte in stream:
        if after_fs:
            after_fs = False
            if byte == _CR:
                continue
        if not inside:
            if byte == _VT:
                flush()
                inside, discarding, body = True, False, bytearray()
            else:
                junk += 1
        elif byte == _VT:  # a new frame before this one ended: the old one is junk
            if not discarding:
                events.append(Junk(1 + len(body)))
            inside, discarding, body = True, False, bytearray()
        elif byte == _FS:
            if not discarding:
                events.append(Frame(bytes(body)))
            inside, after_fs = False, True
        else:
            body.append(byte)
            if not discarding and len(body) > limit:
                events.append(Oversize(limit, bytes(body[:HEAD_BYTES])))
                discarding = True
    flush()
    return events


def normalised(events: list[DecoderEvent], limit: int) -> list[DecoderEvent]:
    """Adjacent junk merged (reads split it), oversize heads cut to what every split holds."""
    out: list[DecoderEvent] = []
    for event in events:
        if isinstance(event, Junk) and out and isinstance(out[-1], Junk):
            out[-1] = Junk(out[-1].size + event.size)
        elif isinstance(event, Oversize):
            out.append(Oversize(event.limit, event.head[: min(limit + 1, HEAD_BYTES)]))
        else:
            out.append(event)
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


#: Streams made of framing bytes, near-frames and filler, long enough to cross limits.
pieces = st.one_of(
    st.sampled_from([VT, FS, CR, FS + CR, VT + b"MSH|^~\\&|", CR + CR, b"\x00", b"\xff\xfe",
                     b"\n", FS + FS, VT + VT]),
    st.binary(max_size=40),
    st.integers(1, 3000).map(lambda n: b"X" * n),
    st.binary(max_size=300).map(lambda b: frame(b.replace(VT, b"").replace(FS, b""))),
)
streams = st.lists(pieces, max_size=40).map(b"".join)
cut_lists = st.lists(st.integers(min_value=0), max_size=30)
limits = st.sampled_from([1, 7, 64, 1024, 2048, 4096])


def run(decoder: FrameDecoder, chunks: list[bytes]) -> list[DecoderEvent]:
    events: list[DecoderEvent] = []
    for chunk in chunks:
        got = decoder.feed(chunk)
        # never buffers beyond the frame limit, whatever arrived
        assert decoder.pending <= decoder.max_frame_bytes
        assert len(decoder.partial_head()) <= HEAD_BYTES
        for event in got:
            assert isinstance(event, Frame | Junk | Oversize)
            if isinstance(event, Frame):
                assert len(event.payload) <= decoder.max_frame_bytes
                assert VT not in event.payload and FS not in event.payload
            elif isinstance(event, Junk):
                assert event.size > 0
            else:
                assert 0 < len(event.head) <= HEAD_BYTES
        events.extend(got)
    return events


@fuzzed(400)
@given(streams, cut_lists, limits)
@example(VT + b"a" * 5000 + FS + CR, [1, 1500, 3000], 1024)
@example(b"junk" + FS + CR + VT + b"x" + VT + b"y" + FS, [5, 6, 9], 64)
def test_any_stream_in_any_reads_gives_the_models_events(stream: bytes, cuts: list[int],
                                                         limit: int) -> None:
    expected = model(stream, limit)
    whole = run(FrameDecoder(limit), [stream])
    pieces_ = run(FrameDecoder(limit), split(stream, cuts))
    assert normalised(whole, limit) == normalised(expected, limit)
    assert normalised(pieces_, limit) == normalised(expected, limit)


@fuzzed(150)
@given(streams, limits)
def test_byte_at_a_time_reads_give_the_same_events(stream: bytes, limit: int) -> None:
    """The worst split a slow sender can make: every byte in its own read."""
    one_by_one = run(FrameDecoder(limit), [stream[i : i + 1] for i in range(len(stream))])
    assert normalised(one_by_one, limit) == normalised(model(stream, limit), limit)


@fuzzed(200)
@given(streams, cut_lists, st.sampled_from([1024, 4096]))
def test_every_byte_is_accounted_for(stream: bytes, cuts: list[int], limit: int) -> None:
    """Frames, junk, oversize frames and the framing bytes add up to the stream, so
    nothing is silently lost or counted twice."""
    events = run(FrameDecoder(limit), split(stream, cuts))
    model_events = model(stream, limit)
    assert normalised(events, limit) == normalised(model_events, limit)
    framed = sum(len(e.payload) + 2 for e in events if isinstance(e, Frame))  # VT, FS
    junk = sum(e.size for e in events if isinstance(e, Junk))
    assert framed + junk <= len(stream)  # the rest: CR after FS, oversize and unfinished frames


@fuzzed(100)
@given(st.lists(st.binary(max_size=200), max_size=10), cut_lists)
def test_well_formed_frames_always_come_out_whole(payloads: list[bytes], cuts: list[int]) -> None:
    clean = [p.replace(VT, b"").replace(FS, b"") for p in payloads]
    stream = b"".join(frame(p) for p in clean)
    assert run(FrameDecoder(1024), split(stream, cuts)) == [Frame(p) for p in clean]


def test_a_flood_of_tiny_frames_costs_nothing_between_them() -> None:
    decoder = FrameDecoder(1024)
    flood = frame(b"") * 200_000
    events = run(decoder, split(flood, list(range(0, len(flood), 65536))))
    assert events == [Frame(b"")] * 200_000
    assert decoder.pending == 0 and not decoder.in_frame


def test_an_endless_frame_is_dropped_as_it_arrives() -> None:
    """A 64 MB frame with no end block: one Oversize, then nothing held."""
    decoder = FrameDecoder(4 * 1024 * 1024)
    events = decoder.feed(VT + b"MSH|^~\\&|")
    block = b"A" * (1024 * 1024)
    for _ in range(64):
        events += decoder.feed(block)
        assert decoder.pending <= decoder.max_frame_bytes
    assert [type(e) for e in events] == [Oversize]
    assert decoder.pending == 0 and decoder.in_frame  # still inside, discarding


def test_an_oversize_frame_cut_off_by_a_new_frame_in_one_read_is_still_oversize() -> None:
    """Found by the campaign: when the bytes over the limit and the next VT came in the same
    read, the oversize frame was reported as junk (counted and dropped, no AR, no record)."""
    stream = VT + b"MSH|^~\\&|" + b"A" * 2000 + VT + b"MSH|" + FS + CR
    whole = FrameDecoder(1024).feed(stream)
    assert [type(e) for e in whole] == [Oversize, Frame]
    assert whole[0] == Oversize(1024, (b"MSH|^~\\&|" + b"A" * 2000)[:HEAD_BYTES])
    byte_by_byte = run(FrameDecoder(1024), [stream[i : i + 1] for i in range(len(stream))])
    assert byte_by_byte == whole
