"""The MLLP listener: frames in, ACKs out, one task per connection.

Each connection is served in order: a frame is answered before the next one
is read, which is how HL7 senders work and what keeps a slow Kafka from
filling memory (the sender waits for its ACK). A connection that sends a frame
over the size limit gets an AR and is closed; bytes outside frames are counted
and dropped; a silent connection is closed after the idle timeout. One bad
connection never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from connectors.mllp.framing import Frame, FrameDecoder, Junk, Oversize, frame
from hutong.errors import HL7Error
from hutong.metrics import Metrics
from producers.intake import Intake

__all__ = ["MLLPServer"]

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024


class MLLPServer:
    """Serve MLLP on ``host:port``, handing each frame to the intake and answering its ACK."""

    def __init__(self, intake: Intake, metrics: Metrics, *, host: str, port: int,
                 max_frame_bytes: int, idle_timeout: float, frame_timeout: float = 60.0) -> None:
        self._intake = intake
        self._metrics = metrics
        self.host = host
        self.port = port
        self._max_frame = max_frame_bytes
        self._idle_timeout = idle_timeout
        self._frame_timeout = frame_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  limit=_READ_SIZE)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("MLLP listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):  # before wait_closed, which waits for connections
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101
        self._tasks.add(task)
        self._metrics.connections.inc()
        peer = writer.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if peer else None
        try:
            await self._serve(reader, writer, remote)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._metrics.connections.dec()
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     remote: str | None) -> None:
        decoder = FrameDecoder(self._max_frame)
        loop = asyncio.get_running_loop()
        frame_deadline: float | None = None
        while True:
            if decoder.in_frame and frame_deadline is None:
                frame_deadline = loop.time() + self._frame_timeout
            elif not decoder.in_frame:
                frame_deadline = None
            wait = self._idle_timeout if frame_deadline is None else max(
                0.0, frame_deadline - loop.time())
            try:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), wait)
            except TimeoutError:
                if frame_deadline is not None:
                    await self._reject_stalled(writer, decoder, remote)
                else:
                    log.info("MLLP connection from %s idle for %.0f s: closing", remote,
                             self._idle_timeout)
                return
            if not data:
                return
            for item in decoder.feed(data):
                if isinstance(item, Frame):
                    receipt = await self._intake.receive(item.payload, "mllp", remote)
                    await self._answer(writer, receipt.ack)
                elif isinstance(item, Junk):
                    self._metrics.framing_errors.labels("outside_frame").inc()
                elif isinstance(item, Oversize):
                    self._metrics.framing_errors.labels("oversize").inc()
                    await self._reject_oversize(writer, item, remote)
                    return

    async def _answer(self, writer: asyncio.StreamWriter, ack: bytes) -> None:
        """Send an ACK; a peer that stops reading is dropped after the idle timeout."""
        writer.write(frame(ack))
        await asyncio.wait_for(writer.drain(), self._idle_timeout)

    async def _reject_stalled(self, writer: asyncio.StreamWriter, decoder: FrameDecoder,
                              remote: str | None) -> None:
        """A frame begun and not finished in time: AR, a dead letter with its head, close."""
        self._metrics.framing_errors.labels("stalled").inc()
        error = HL7Error(f"frame not completed within {self._frame_timeout:.0f} s",
                         location="MLLP", code="207")
        log.warning("MLLP sender %s stalled mid-frame (%d bytes): NAK and close", remote,
                    decoder.pending)
        receipt = await self._intake.refuse(decoder.partial_head(), "mllp", remote, error)
        await self._answer(writer, receipt.ack)

    async def _reject_oversize(self, writer: asyncio.StreamWriter, item: Oversize,
                               remote: str | None) -> None:
        error = HL7Error(f"frame exceeds the {self._max_frame}-byte limit", location="MLLP",
                         code="207")
        log.warning("MLLP frame from %s over %d bytes: NAK and close", remote, self._max_frame)
        receipt = await self._intake.refuse(item.head, "mllp", remote, error)
        await self._answer(writer, receipt.ack)
