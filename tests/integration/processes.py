"""A server process for a test: started, waited for, and always stopped."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx

__all__ = ["serving"]


@contextlib.contextmanager
def serving(argv: Sequence[str], log_path: Path, ready: Callable[[], bool], *,
            env: dict[str, str] | None = None, timeout: float = 120,
            what: str = "the server") -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (output to ``log_path``) until ``ready()`` holds; stop it afterwards."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(list(argv), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if ready():
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{what} did not get ready:\n" + \
                    log_path.read_text()
                time.sleep(0.2)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
