"""MLLP load from a separate process: N senders, each waiting for its ACK like a facility.

``python -m tests.bench.load --port P --senders 16 --messages 20000`` sends as fast as
the ACKs come; ``--rate 5000 --seconds 5`` paces the senders and measures each ACK's
latency from the moment the message was due (so a server that falls behind shows it).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from connectors.mllp.framing import Frame, FrameDecoder, frame

ORU = ("MSH|^~\\&|LIS|BENCH{s}|HUTONG|REGION|20261120093000||ORU^R01^ORU_R01|B{s}N{n}|P|2.4\r"
       "PID|1||M{s}{n}^^^BENCH^MR~11010519491231002X^^^^SFZH||测试甲||19491231|M\r"
       "OBR|1|B{s}N{n}P|B{s}N{n}F|BCP^生化^L|||20261120090000||||||||血清\r"
       "OBX|1|NM|K^钾^L||4.1|mmol/L|3.5-5.5|N|||F|||20261120092500\r"
       "OBX|2|NM|NA^钠^L||141|mmol/L|137-147|N|||F|||20261120092500\r"
       "OBX|3|NM|GLU^葡萄糖^L||5.2|mmol/L|3.9-6.1|N|||F|||20261120092500\r")
ADT = ("MSH|^~\\&|HIS|BENCH{s}|HUTONG|REGION|20261120093000||ADT^A01^ADT_A01|B{s}N{n}|P|2.4\r"
       "EVN|A01|20261120093000\r"
       "PID|1||M{s}{n}^^^BENCH^MR~11010519491231002X^^^^SFZH||测试甲||19491231|M\r"
       "PV1|1|I|NEURO^101^1\r")


def message(sender: int, n: int) -> bytes:
    """Two ORU^R01 (3 OBX each) for every ADT^A01."""
    return (ADT if n % 3 == 2 else ORU).format(s=sender, n=n).encode()


async def _sender(port: int, sender: int, count: int, interval: float, start: float,
                  latencies: list[float], codes: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = FrameDecoder(1 << 20)
    for n in range(count):
        due = start + n * interval
        if interval:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sent = time.perf_counter()
        writer.write(frame(message(sender, n)))
        frames: list[bytes] = []
        while not frames:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            frames = [i.payload for i in decoder.feed(data) if isinstance(i, Frame)]
        latencies.append(time.perf_counter() - (due if interval else sent))
        code = frames[0].split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in frames[0] else "??"
        codes[code] = codes.get(code, 0) + 1
    writer.close()


async def run(port: int, senders: int, messages: int, rate: float, seconds: float) -> dict[
        str, object]:
    per_sender = int(rate * seconds / senders) if rate else messages // senders
    interval = senders / rate if rate else 0.0
    latencies: list[float] = []
    codes: dict[str, int] = {}
    start = time.perf_counter() + 0.1
    await asyncio.gather(*(_sender(port, s, per_sender, interval, start, latencies, codes)
                           for s in range(senders)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {"messages": len(latencies), "seconds": round(elapsed, 3),
            "msg_per_s": round(len(latencies) / elapsed), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "codes": codes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--messages", type=int, default=16000)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.port, args.senders, args.messages, args.rate,
                                     args.seconds))))


if __name__ == "__main__":
    main()
