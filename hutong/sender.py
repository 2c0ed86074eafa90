"""``hutong send``: HL7 v2 files over MLLP, ACKs printed as they come."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import Progress

from connectors.mllp.client import MLLPClient
from hutong.errors import ConfigError, HL7Error
from producers.hl7v2.charset import decode_message
from producers.hl7v2.files import iter_files, split_messages
from producers.hl7v2.message import Message

__all__ = ["ack_summary", "parse_target", "send_files"]


def parse_target(url: str) -> tuple[str, int]:
    """``mllp://host:port`` -> (host, port)."""
    parts = urlsplit(url)
    if parts.scheme != "mllp" or not parts.hostname or not parts.port:
        raise ConfigError(f"--to must look like mllp://HOST:PORT, not {url!r}")
    return parts.hostname, parts.port


def ack_summary(ack: bytes) -> tuple[str, str, str]:
    """(MSA-1 code, MSA-2 control id, MSA-3 text or ERR text) of an ACK."""
    try:
        text, _ = decode_message(ack)
        msa = Message.parse(text).segment("MSA")
    except HL7Error as exc:
        return "??", "", f"unreadable ACK: {exc}"
    if msa is None:
        return "??", "", "ACK without MSA"
    return msa.get(1), msa.get(2), msa.get(3)


async def send_files(paths: list[Path], target: str, console: Console, *,
                     quiet: bool = False) -> int:
    """Send every message of ``paths``; return how many were not AA/CA."""
    host, port = parse_target(target)
    messages = [(f, m) for f in iter_files(paths) for m in split_messages(f.read_bytes())]
    codes: Counter[str] = Counter()
    async with MLLPClient(host, port) as client:
        with Progress(console=console, transient=True, disable=quiet or len(messages) < 50) as bar:
            task = bar.add_task("sending", total=len(messages))
            for path, message in messages:
                code, control_id, text = ack_summary(await client.send(message))
                codes[code] += 1
                if not quiet:
                    note = f"  {text}" if text and code not in {"AA", "CA"} else ""
                    console.print(f"{code} {control_id or '-'} ({path.name}){note}")
                bar.advance(task)
    summary = ", ".join(f"{n} {code}" for code, n in sorted(codes.items()))
    console.print(f"{len(messages)} messages sent to {host}:{port}: {summary or 'none'}")
    return sum(n for code, n in codes.items() if code not in {"AA", "CA"})
