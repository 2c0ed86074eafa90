"""``hutong send``: HL7 v2 files over MLLP (or MLLP over TLS), ACKs printed as they come.

Files may hold one message, many, or an HL7 batch (FHS/BHS ... BTS/FTS); folders
are read recursively. In enhanced acknowledgement mode every ACK a message gets
is printed (``CA+AA``).
"""

from __future__ import annotations

import ssl
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import Progress

from connectors.mllp.client import MLLPClient
from hutong.errors import ConfigError, HL7Error
from producers.hl7v2.charset import decode_message
from producers.hl7v2.files import iter_files, parse_batch
from producers.hl7v2.message import Message

__all__ = ["ack_summary", "parse_target", "send_files"]


def parse_target(url: str) -> tuple[str, int, bool]:
    """``mllp://host:port`` or ``mllps://host:port`` -> (host, port, tls)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mllp", "mllps") or not parts.hostname or not parts.port:
        raise ConfigError(f"--to must look like mllp://HOST:PORT or mllps://HOST:PORT, "
                          f"not {url!r}")
    return parts.hostname, parts.port, parts.scheme == "mllps"


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
                     quiet: bool = False, tls: ssl.SSLContext | None = None) -> int:
    """Send every message of ``paths``; return how many were not accepted (AA or CA)."""
    host, port, wants_tls = parse_target(target)
    if wants_tls and tls is None:
        tls = ssl.create_default_context()
    messages: list[tuple[Path, bytes]] = []
    for path in iter_files(paths):
        batch = parse_batch(path.read_bytes())
        for note in batch.problems:  # e.g. a BTS count that does not match
            console.print(f"note: {path.name}: {note}")
        messages.extend((path, m) for m in batch.messages)
    codes: Counter[str] = Counter()
    async with MLLPClient(host, port, tls=tls if wants_tls else None) as client:
        with Progress(console=console, transient=True, disable=quiet or len(messages) < 50) as bar:
            task = bar.add_task("sending", total=len(messages))
            for path, message in messages:
                summaries = [ack_summary(ack) for ack in await client.exchange(message)]
                code = "+".join(s[0] for s in summaries) or "none"  # asked for none (NE/ER/SU)
                control_id = next((s[1] for s in summaries if s[1]), "")
                text = next((s[2] for s in summaries if s[2] and s[0] not in {"AA", "CA"}), "")
                codes[code] += 1
                if not quiet:
                    note = f"  {text}" if text else ""
                    console.print(f"{code} {control_id or '-'} ({path.name}){note}")
                bar.advance(task)
    summary = ", ".join(f"{n} {code}" for code, n in sorted(codes.items()))
    console.print(f"{len(messages)} messages sent to {host}:{port}: {summary or 'none'}")
    return sum(n for code, n in codes.items() if code not in _ACCEPTED)


#: What a sender may count as accepted: original AA, enhanced commit and application ACKs.
_ACCEPTED = frozenset({"AA", "CA", "CA+AA", "none"})
