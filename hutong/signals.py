"""Waiting for Ctrl-C or SIGTERM inside an asyncio program."""

from __future__ import annotations

import asyncio
import signal

__all__ = ["until_signalled"]


async def until_signalled() -> None:
    """Return when the process gets SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
