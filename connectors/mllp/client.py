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
        #: How long to wait for an ACK that comes only on error or only on success.
        self.grace = 1.0
        self._expect = ""  # MSH-10 of the message in flight: late ACKs of others are dropped

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
        """Send one message and return its last ACK (the application ACK in enhanced mode)."""
        acks = await self.exchange(message)
        if not acks:
            raise HutongError("no acknowledgement came (the message asked for none)")
        return acks[-1]

    async def exchange(self, message: bytes) -> list[bytes]:
        """Send one message; every ACK it gets, in order.

        Original mode (MSH-15 and MSH-16 empty): one ACK. Enhanced mode: the commit
        ACK, then the application ACK, as MSH-15/16 ask; an ACK sent only on error
        or only on success is waited for briefly (``grace``).
        """
        if self._writer is None or self._reader is None:
            raise HutongError("MLLP client is not connected")
        self._writer.write(frame(message))
        await self._writer.drain()
        self._expect = _control_id(message)
        accept, application = _ack_types(message)
        if not accept and not application:
            return [await asyncio.wait_for(self._next_ack(), self.timeout)]
        acks: list[bytes] = []
        commit = accept or "AL"
        if commit != "NE":
            first = await self._maybe_ack(self.timeout if commit == "AL" else self.grace)
            if first is None or _msa_code(first) != "CA":
                return [first] if first is not None else []
            acks.append(first)
        app = application or "AL"
        if app != "NE":
            second = await self._maybe_ack(self.timeout if app == "AL" else self.grace)
            acks.extend([second] if second is not None else [])
        return acks

    async def _maybe_ack(self, wait: float) -> bytes | None:
        try:
            return await asyncio.wait_for(self._next_ack(), wait)
        except TimeoutError:
            return None

    async def _next_ack(self) -> bytes:
        """The next ACK whose MSA-2 is the message in flight (or that names none)."""
        while True:
            ack = await self._read_frame()
            answered = _msa_field(ack, 2)
            if not self._expect or not answered or answered == self._expect:
                return ack

    async def _read_frame(self) -> bytes:
        assert self._reader is not None  # noqa: S101
        while not self._pending:
            data = await self._reader.read(65536)
            if not data:
                raise HutongError(f"{self.host}:{self.port} closed the connection before the ACK")
            self._pending.extend(i.payload for i in self._decoder.feed(data)
                                 if isinstance(i, Frame))
        return self._pending.pop(0)


def _fields(message: bytes, segment: bytes) -> list[bytes]:
    for line in message.split(b"\r"):
        if line[:3] == segment and len(line) > 3:
            return line.split(line[3:4])
    return []


def _ack_types(message: bytes) -> tuple[str, str]:
    """(MSH-15, MSH-16) of a message to be sent, upper-cased."""
    fields = _fields(message.replace(b"\n", b"\r"), b"MSH")
    def get(n: int) -> str:
        return fields[n - 1].decode("latin-1").strip().upper() if len(fields) >= n else ""
    return get(15), get(16)


def _msa_field(ack: bytes, n: int) -> str:
    fields = _fields(ack, b"MSA")
    return fields[n].decode("latin-1").split("^")[0] if len(fields) > n else ""


def _msa_code(ack: bytes) -> str:
    return _msa_field(ack, 1)


def _control_id(message: bytes) -> str:
    fields = _fields(message.replace(b"\n", b"\r"), b"MSH")
    return fields[9].decode("latin-1") if len(fields) > 9 else ""
