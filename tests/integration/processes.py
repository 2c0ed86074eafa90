"""A server process for a test: started, waited for, and always stopped."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx

from .conftest import free_port

__all__ = ["hub_env", "serving"]


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


def hub_env(data_dir: Path) -> dict[str, str]:
    """The environment of a `hutong up` subprocess: this one without HUTONG_*, the data dir,
    and every port free (MLLP, HTTP, embedded Kafka, the ClickHouse HTTP interface)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUTONG_")}
    env.update({
        "HUTONG_DATA_DIR": str(data_dir), "HUTONG_KAFKA_PORT": str(free_port()),
        "HUTONG_MLLP_HOST": "127.0.0.1", "HUTONG_MLLP_PORT": str(free_port()),
        "HUTONG_HTTP_HOST": "127.0.0.1", "HUTONG_HTTP_PORT": str(free_port()),
        "HUTONG_CLICKHOUSE_HTTP_PORT": str(free_port()),
    })
    return env
