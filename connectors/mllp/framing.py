"""MLLP framing on bytes (HL7 v2 Transport Specification, MLLP release 2).

A frame is ``VT payload FS CR``. :func:`frame` wraps a payload; a
:class:`FrameDecoder` takes whatever the socket returned and gives back, in
order, what it found:

    Frame(payload)       a complete frame
    Junk(size)           bytes outside any frame (or an unterminated frame
                         cut off by a new VT), counted and dropped
    Oversize(limit, head)  a frame longer than the limit: reported as soon as the
                         limit is crossed (also when a new VT cuts it off), its
                         first bytes kept so the server can scrape MSH-10 for its
                         NAK; the rest is discarded unbuffered

However the reads split the stream, the events are the same (but a junk count
may be split across reads, and under a limit smaller than HEAD_BYTES an oversize
head holds what its read held); ``tests/unit/test_fuzz_mllp.py`` holds the
decoder to a byte-at-a-time model of these rules.

No sockets here: the server owns the connection and decides what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CR", "FS", "FS_CR", "HEAD_BYTES", "VT", "DecoderEvent", "Frame", "FrameDecoder",
           "Junk", "Oversize", "frame"]

VT = b"\x0b"
FS = b"\x1c"
CR = b"\x0d"
FS_CR = FS + CR
#: How many leading bytes of an oversize frame are kept for the NAK.
HEAD_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete frame's payload."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Junk:
    """``size`` bytes that were not inside a frame."""

    size: int


@dataclass(frozen=True, slots=True)
class Oversize:
    """A frame crossed ``limit`` bytes; ``head`` is its beginning."""

    limit: int
    head: bytes


DecoderEvent = Frame | Junk | Oversize


def frame(payload: bytes) -> bytes:
    """Wrap ``payload`` in VT ... FS CR. It must not contain VT or FS."""
    if VT in payload or FS in payload:
        raise ValueError("an MLLP payload must not contain the VT or FS byte")
    return VT + payload + FS_CR


class FrameDecoder:
    """Incremental MLLP decoder: feed it reads, get frames and framing events back.

    A frame is complete at its FS, so a sender that omits the CR still gets its
    answer; a CR right after FS (in this read or the next) is consumed.
    """

    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._inside = False  # between VT and FS
        self._after_fs = False  # FS seen: a CR that follows belongs to the frame
        self._discarding = False  # inside an oversize frame
        #: How many frames have begun (VT seen) so far: tells one frame from the next.
        self.frames_begun = 0

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held (for a report when the peer disconnects)."""
        return len(self._buffer)

    @property
    def in_frame(self) -> bool:
        """Whether a frame has begun (VT seen) and not yet ended."""
        return self._inside

    def partial_head(self) -> bytes:
        """The first bytes of the unfinished frame, for the record of a stalled sender."""
        return bytes(self._buffer[:HEAD_BYTES])

    def feed(self, data: bytes) -> list[DecoderEvent]:
        """Consume ``data``; return the events it completes, in order."""
        events: list[DecoderEvent] = []
        junk = 0
        pos, size = 0, len(data)
        while pos < size:
            if self._after_fs:
                self._after_fs = False
                if data[pos] == CR[0]:
                    pos += 1
            elif not self._inside:
                start = data.find(VT, pos)
                end = size if start < 0 else start
                junk += end - pos
                pos = end
                if start >= 0:
                    if junk:
                        events.append(Junk(junk))
                        junk = 0
                    self._begin()
                    pos += 1
            else:
                pos = self._consume(data, pos, events)
        if junk:
            events.append(Junk(junk))
        return events

    def _begin(self) -> None:
        self.frames_begun += 1
        self._inside, self._discarding = True, False
        self._buffer.clear()

    def _finish(self, events: list[DecoderEvent]) -> None:
        if not self._discarding:
            events.append(Frame(bytes(self._buffer)))
        self._buffer.clear()
        self._discarding = False

    def _consume(self, data: bytes, pos: int, events: list[DecoderEvent]) -> int:
        """Read frame bytes from ``pos``; return where to continue."""
        end = data.find(FS, pos)
        stop = len(data) if end < 0 else end
        restart = data.find(VT, pos, stop)
        if restart >= 0:  # a new frame began before this one ended
            if not self._discarding:
                self._cut_off(data, pos, restart, events)
            self._begin()
            return restart + 1
        if not self._discarding:
            if len(self._buffer) + stop - pos > self.max_frame_bytes:
                events.append(self._oversize(data, pos, stop))
                self._buffer.clear()
                self._discarding = True
            else:
                self._buffer += data[pos:stop]
        if end >= 0:
            self._inside, self._after_fs = False, True
            self._finish(events)
            return end + 1
        return stop

    def _oversize(self, data: bytes, pos: int, stop: int) -> Oversize:
        taken = data[pos : min(stop, pos + HEAD_BYTES)]
        return Oversize(self.max_frame_bytes, (bytes(self._buffer) + taken)[:HEAD_BYTES])

    def _cut_off(self, data: bytes, pos: int, restart: int, events: list[DecoderEvent]) -> None:
        """The unfinished frame a new VT at ``restart`` ends: junk, or oversize if it had
        crossed the limit (however the reads split it, a frame over the limit is reported)."""
        if len(self._buffer) + restart - pos > self.max_frame_bytes:
            events.append(self._oversize(data, pos, restart))
        else:
            events.append(Junk(1 + len(self._buffer) + restart - pos))
