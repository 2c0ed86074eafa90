"""Ctrl-C and SIGTERM as an asyncio event, installed before any work starts."""

from __future__ import annotations

import asyncio
import signal

__all__ = ["stop_event", "until_signalled"]


def stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; call it first, so no signal finds the default."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_signalled() -> None:
    """Return when the process gets SIGINT or SIGTERM."""
    await stop_event().wait()
