"""The MLLP client against a scripted peer on a loopback socket (no broker needed).

These pin what ``hutong send`` relies on: an ACK that names another message (a late
answer to an earlier one that timed out) is skipped, and enhanced-mode ACKs sent only
on error are waited for briefly, not for the whole timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from connectors.mllp.client import MLLPClient
from connectors.mllp.framing import Frame, FrameDecoder, frame

MSG = "MSH|^~\\&|LIS|FAC1|HUTONG|R|20261122||ORU^R01|{cid}|P|2.4{modes}\rPID|1||M1\r"


def ack(code: str, cid: str) -> bytes:
    return frame(f"MSH|^~\\&|HUTONG|R|LIS|FAC1|20261122||ACK|A-{cid}|P|2.4\r"
                 f"MSA|{code}|{cid}\r".encode())


async def exchange(answer: Callable[[str], list[bytes]], message: str, grace: float = 0.2
                   ) -> list[bytes]:
    """Run a peer that answers each frame with ``answer(control id)``; send one message."""
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(1 << 20)
        while data := await reader.read(65536):
            for item in decoder.feed(data):
                if isinstance(item, Frame):
                    cid = item.payload.split(b"\r")[0].split(b"|")[9].decode()
                    writer.write(b"".join(answer(cid)))
                    await writer.drain()
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with MLLPClient("127.0.0.1", port, timeout=5.0) as client:
            client.grace = grace
            return await client.exchange(message.encode())
    finally:
        server.close()
        await server.wait_closed()


def codes(acks: list[bytes]) -> list[str]:
    return [a.split(b"MSA|")[1].split(b"|")[0].decode() for a in acks]


def test_a_late_ack_for_an_earlier_message_is_skipped() -> None:
    acks = asyncio.run(exchange(lambda cid: [ack("AE", "EARLIER"), ack("AA", cid)],
                                MSG.format(cid="C2", modes="")))
    assert codes(acks) == ["AA"] and b"MSA|AA|C2" in acks[0]


def test_enhanced_mode_returns_commit_then_application_ack() -> None:
    acks = asyncio.run(exchange(lambda cid: [ack("CA", cid), ack("AA", cid)],
                                MSG.format(cid="C3", modes="|||AL|AL")))
    assert codes(acks) == ["CA", "AA"]


def test_an_application_ack_asked_only_on_error_is_waited_for_briefly() -> None:
    async def timed() -> tuple[list[bytes], float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        acks = await exchange(lambda cid: [ack("CA", cid)], MSG.format(cid="C4", modes="|||AL|ER"))
        return acks, loop.time() - start

    acks, took = asyncio.run(timed())
    assert codes(acks) == ["CA"] and took < 4.0  # the grace, not the 5 s timeout


def test_a_commit_error_ends_the_exchange() -> None:
    acks = asyncio.run(exchange(lambda cid: [ack("CE", cid)], MSG.format(cid="C5",
                                                                         modes="|||AL|AL")))
    assert codes(acks) == ["CE"]
