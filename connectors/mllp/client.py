"""Send HL7 v2 messages over MLLP as a facility would, and read the ACKs."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from connectors.mllp.framing import Frame, FrameDecoder, frame
from hutong.errors import HutongError

__all__ = ["MLLPClient"]


class MLLPClient:
    """One MLLP connection; ``send`` waits for the ACK of each message."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0,
                 tls: ssl.SSLContext | None = None, max_ack_bytes: int = 1024 * 1024) -> None:
        self.host, self.port, self.timeout, self._tls = host, port, timeout, tls
        self._decoder = FrameDecoder(max_ack_bytes)
        self._pending: list[bytes] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> MLLPClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self._tls), self.timeout)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None

    async def send(self, message: bytes) -> bytes:
        """Send one message and return its ACK payload."""
        if self._writer is None or self._reader is None:
            raise HutongError("MLLP client is not connected")
        self._writer.write(frame(message))
        await self._writer.drain()
        return await asyncio.wait_for(self._next_ack(), self.timeout)

    async def _next_ack(self) -> bytes:
        assert self._reader is not None  # noqa: S101
        while not self._pending:
            data = await self._reader.read(65536)
            if not data:
                raise HutongError(f"{self.host}:{self.port} closed the connection before the ACK")
            self._pending.extend(i.payload for i in self._decoder.feed(data)
                                 if isinstance(i, Frame))
        return self._pending.pop(0)
