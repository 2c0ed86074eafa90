"""The MLLP listener: frames in, ACKs out, one task per connection.

Each connection is served in order: a frame is answered before the next one
is read, which is how HL7 senders work and what keeps a slow Kafka from
filling memory (the sender waits for its ACK). A connection that sends a frame
over the size limit gets an AR and is closed; bytes outside frames are counted
and dropped, and so is a frame the sender disconnected in the middle of (it got
no ACK, so it sends again); a silent connection is closed after the idle timeout. One bad
connection never stops the others; connections beyond ``max_connections``
are closed at once.

With an ``ssl_context`` the listener speaks MLLP over TLS: the handshake is
done here (so a failed one is audited, not just logged by asyncio), and the
verified client certificate names the facility (CN or DNS SAN, looked up in
the facility registry). Every message on that connection must name that
facility in MSH-4.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from typing import Any

from connectors.facilities import FacilityRegistry, Peer
from connectors.mllp.framing import Frame, FrameDecoder, Junk, Oversize, frame
from hutong.errors import HL7Error
from hutong.metrics import Metrics
from producers.intake import Intake

__all__ = ["MLLPServer"]

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
_HANDSHAKE_TIMEOUT = 10.0


def certificate_names(cert: dict[str, Any]) -> list[str]:
    """The subject CN and DNS subject-alternative names of a verified peer certificate."""
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn
             if key == "commonName"]
    names += [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    return names


class _Paused(asyncio.Protocol):
    """Holds a new connection unread until the TLS layer takes it over."""

    def __init__(self, on_connect: Callable[[asyncio.BaseTransport], None]) -> None:
        self._on_connect = on_connect

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]
        self._on_connect(transport)


class MLLPServer:
    """Serve MLLP on ``host:port``, handing each frame to the intake and answering its ACK."""

    def __init__(self, intake: Intake, metrics: Metrics, *, host: str, port: int,
                 max_frame_bytes: int, idle_timeout: float, frame_timeout: float = 60.0,
                 max_connections: int = 1000, ssl_context: ssl.SSLContext | None = None,
                 registry: FacilityRegistry | None = None) -> None:
        self._intake = intake
        self._ssl = ssl_context
        self._registry = registry if registry is not None else FacilityRegistry()
        self._max_connections = max_connections
        self.transport = "mllps" if ssl_context is not None else "mllp"
        self._metrics = metrics
        self.host = host
        self.port = port
        self._max_frame = max_frame_bytes
        self._idle_timeout = idle_timeout
        self._frame_timeout = frame_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._ssl is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                      limit=_READ_SIZE)
        else:  # the handshake is ours, so a failed one is audited (see _handshake)
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(
                lambda: _Paused(lambda t: self._tls_connection(t)), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("MLLP%s listening on %s:%d", " over TLS" if self._ssl else "", self.host,
                 self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):  # before wait_closed, which waits for connections
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _tls_connection(self, transport: asyncio.BaseTransport) -> None:
        if len(self._tasks) >= self._max_connections:  # before the costly handshake
            self._metrics.connections_refused.labels("limit").inc()
            transport.close()
            return
        task = asyncio.create_task(self._handshake(transport))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      peer: Peer | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101
        address = writer.get_extra_info("peername")
        if len(self._tasks) >= self._max_connections + (task in self._tasks):
            self._metrics.connections_refused.labels("limit").inc()
            log.warning("MLLP connection from %s refused: %d connections open", address and
                        address[0], len(self._tasks))
            writer.close()
            return
        self._tasks.add(task)
        self._metrics.connections.inc()
        try:
            await self._serve(reader, writer,
                              peer or Peer(self.transport, address[0] if address else None))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        finally:
            self._metrics.connections.dec()
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _handshake(self, transport: asyncio.BaseTransport) -> None:
        """TLS server handshake, then serve the connection as its certificate names it.

        The transport arrives paused (:class:`_Paused`), so the ClientHello is still
        unread when the TLS layer takes over. A failed handshake is audited.
        """
        assert self._ssl is not None  # noqa: S101
        loop = asyncio.get_running_loop()
        address = transport.get_extra_info("peername")
        peer = Peer(self.transport, address[0] if address else None)
        reader = asyncio.StreamReader(limit=_READ_SIZE)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            tls = await loop.start_tls(transport, protocol, self._ssl,  # type: ignore[arg-type]
                                       server_side=True, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            transport.close()
            reason = getattr(exc, "reason", None) or type(exc).__name__
            self._metrics.connections_refused.labels("tls").inc()
            self._intake.refuse_connection(peer, f"TLS handshake failed: {reason}")
            return
        if tls is None:  # the peer went away during the handshake
            transport.close()
            return
        protocol.connection_made(tls)
        writer = asyncio.StreamWriter(tls, protocol, reader, loop)
        names = certificate_names(writer.get_extra_info("peercert") or {})
        facility = self._registry.for_certificate(names)
        credential = f"certificate {names[0]}" if names else "certificate without a name"
        await self._accept(reader, writer, Peer(self.transport, peer.address,
                                                facility.id if facility else None, credential,
                                                tuple(names)))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: Peer) -> None:
        decoder = FrameDecoder(self._max_frame)
        loop = asyncio.get_running_loop()
        frame_deadline: float | None = None
        timed_frame = 0  # which frame the deadline is for: each frame gets its own
        while True:
            if not decoder.in_frame:
                frame_deadline = None
            elif frame_deadline is None or timed_frame != decoder.frames_begun:
                frame_deadline = loop.time() + self._frame_timeout
                timed_frame = decoder.frames_begun
            wait = self._idle_timeout if frame_deadline is None else max(
                0.0, frame_deadline - loop.time())
            try:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), wait)
            except TimeoutError:
                if frame_deadline is not None:
                    await self._reject_stalled(writer, decoder, peer)
                else:
                    log.info("MLLP connection from %s idle for %.0f s: closing", peer.address,
                             self._idle_timeout)
                return
            if not data:
                if decoder.in_frame:  # no ACK went out, so the sender resends: counted only
                    self._metrics.framing_errors.labels("unfinished").inc()
                    log.info("MLLP sender %s disconnected mid-frame (%d bytes held)",
                             peer.address, decoder.pending)
                return
            for item in decoder.feed(data):
                if isinstance(item, Frame):
                    receipt = await self._intake.receive(item.payload, peer)
                    await self._answer(writer, *receipt.acks)
                elif isinstance(item, Junk):
                    self._metrics.framing_errors.labels("outside_frame").inc()
                elif isinstance(item, Oversize):
                    self._metrics.framing_errors.labels("oversize").inc()
                    await self._reject_oversize(writer, item, peer)
                    return

    async def _answer(self, writer: asyncio.StreamWriter, *acks: bytes) -> None:
        """Send the ACKs; a peer that stops reading is dropped after the idle timeout."""
        if not acks:
            return
        writer.write(b"".join(frame(ack) for ack in acks))
        await asyncio.wait_for(writer.drain(), self._idle_timeout)

    async def _reject_stalled(self, writer: asyncio.StreamWriter, decoder: FrameDecoder,
                              peer: Peer) -> None:
        """A frame begun and not finished in time: AR, a dead letter with its head, close."""
        self._metrics.framing_errors.labels("stalled").inc()
        error = HL7Error(f"frame not completed within {self._frame_timeout:.0f} s",
                         location="MLLP", code="207")
        log.warning("MLLP sender %s stalled mid-frame (%d bytes): NAK and close", peer.address,
                    decoder.pending)
        receipt = await self._intake.refuse(decoder.partial_head(), peer, error, kind="framing")
        await self._answer(writer, *receipt.acks)

    async def _reject_oversize(self, writer: asyncio.StreamWriter, item: Oversize,
                               peer: Peer) -> None:
        error = HL7Error(f"frame exceeds the {self._max_frame}-byte limit", location="MLLP",
                         code="207")
        log.warning("MLLP frame from %s over %d bytes: NAK and close", peer.address,
                    self._max_frame)
        receipt = await self._intake.refuse(item.head, peer, error, kind="oversize")
        await self._answer(writer, *receipt.acks)
