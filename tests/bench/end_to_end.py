"""``make bench``: end to end. MLLP in, rows in the warehouse out, on one ``hutong up``.

Runs ``hutong up`` as a subprocess on the embedded stack (free ports, a data
directory of its own, open intake) and the soak's load generator
(:mod:`tests.bench.soak`: ``E2E_SENDERS`` senders, default 64, each a facility
waiting for its ACK; two
ORU^R01 with 3 OBX for every ADT^A01, about a pool of people with valid ID
numbers) in a second process, twice:

1. **Throughput**: the senders go as fast as the ACKs come for ``E2E_SECONDS``
   (default 20). Figures: ACKed messages/s; and end-to-end messages/s, the
   messages whose rows are all in the warehouse divided by the time from the
   first receipt to the last row (``ingested_at`` of ``lab_results`` and
   ``encounters``), once the rows stop growing.
2. **Freshness at a fixed rate**: ``E2E_RATE`` messages/s (default 5,000) for
   ``E2E_SECONDS``: the p50, p95 and p99 of ``ingested_at - received_at`` (MLLP
   receipt to the row in ClickHouse, both stamped on this machine), over the
   rows of that run; the p99 ACK latency, from when each message was due; and
   the rate the hub ACKed (when below the one offered, the freshness is at that).

Peak RSS of the hub and its children (stream worker, broker) is sampled every
second throughout. What sets the pace is reported too, for the throughput run
(from its start until its rows stop growing, the drain included): each
process's CPU per ACKed message (``/proc``), and each consumer group's largest
lag (the hub's ``hutong_consumer_lag``, every second): the group furthest behind
is the stage the rows wait for. Printed, never asserted; :func:`main` returns
the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.bench.soak import consumer_lag, processes, rss_and_fds, start_hub, stop_hub

SECONDS = float(os.environ.get("E2E_SECONDS", "20"))
RATE = float(os.environ.get("E2E_RATE", "5000"))
#: Facilities sending at once, each waiting for its ACK.
SENDERS = int(os.environ.get("E2E_SENDERS", "64"))
#: A rate no sender reaches: each sends as soon as its last ACK came.
_FLAT_OUT = 1_000_000.0
_DRAIN_S = float(os.environ.get("E2E_DRAIN", "180"))


def sql(api: str, query: str) -> list[Any]:
    """The first row of ``query`` (the bench's hub answers this machine as an admin)."""
    answer = httpx.post(f"{api}/api/v1/sql", json={"query": query}, timeout=60).json()
    return list(answer.get("rows", [[]])[0])


class Watch:
    """Samples a hub's process tree every second in a thread: the peak RSS, and each
    consumer group's largest lag since :meth:`mark`."""

    def __init__(self, root: int, api: str) -> None:
        self.root = root
        self.api = api
        self.peak_mb = 0.0
        self.peak_by_process: dict[str, float] = {}
        self.peak_lag: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mark(self) -> dict[str, float]:
        """Start the lag peaks again; each process's CPU seconds so far."""
        self.peak_lag = {}
        return cpu_seconds(self.root)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            sizes: dict[str, float] = {}
            for pid, name in processes(self.root):
                sizes[name] = sizes.get(name, 0.0) + rss_and_fds(pid)[0] / 2**20
            total = sum(sizes.values())
            if total > self.peak_mb:
                self.peak_mb, self.peak_by_process = total, sizes
            for group, lag in consumer_lag(self.api).items():
                self.peak_lag[group] = max(lag, self.peak_lag.get(group, 0.0))


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds (user and system) each process of a tree has used, by short name."""
    used: dict[str, float] = {}
    for pid, name in processes(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return used


_TICKS = os.sysconf("SC_CLK_TCK")


def generate(mllp_port: int, rate: float, seconds: float, run: str) -> dict[str, Any]:
    """Run the soak's generator (``SENDERS`` facilities; ``run`` in every message control
    id); the totals of its windows (offered, ACKed, codes, p99)."""
    env = {**os.environ, "SOAK_RATE": str(rate), "SOAK_SECONDS": str(seconds),
           "SOAK_INTERVAL": str(seconds + 60), "SOAK_SENDERS": str(SENDERS),
           "SOAK_RUN": run}
    done = subprocess.run([sys.executable, "-m", "tests.bench.soak", "--generate",
                           str(mllp_port)], env=env, capture_output=True, text=True,
                          check=True)
    windows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    codes: dict[str, int] = {}
    for window in windows:
        for code, n in window.get("codes", {}).items():
            codes[code] = codes.get(code, 0) + n
    p99s = [w["p99_ms"] for w in windows if w.get("p99_ms") is not None]
    return {"acked": sum(w.get("acked", 0) for w in windows), "codes": codes,
            "errors": sum(w.get("errors", 0) for w in windows),
            "p99_ms": max(p99s) if p99s else None}


#: Rows received since a time, of lab results and encounters; ms from first receipt to last row.
_SETTLE = """SELECT
  (SELECT count() FROM hutong.lab_results FINAL WHERE received_at >= :since),
  (SELECT count() FROM hutong.encounters FINAL WHERE received_at >= :since),
  (SELECT dateDiff('millisecond', min(received_at), max(ingested_at)) FROM (
     SELECT received_at, ingested_at FROM hutong.lab_results WHERE received_at >= :since
     UNION ALL
     SELECT received_at, ingested_at FROM hutong.encounters WHERE received_at >= :since))"""
#: Receipt to row, p50, p95, p99 in ms, over the lab results received since a time.
_FRESHNESS = """SELECT quantilesExact(0.5, 0.95, 0.99)(dateDiff('millisecond', received_at,
  ingested_at)) FROM hutong.lab_results WHERE received_at >= :since"""


def _since(at: str) -> str:
    """A time the hub gave (:func:`_now`), checked to be one before it goes into SQL."""
    return datetime.strptime(at, "%Y-%m-%d %H:%M:%S.%f").strftime("%Y-%m-%d %H:%M:%S.%f")


def settle(api: str, since: str) -> tuple[int, float]:
    """Wait until the rows received since ``since`` stop growing; (messages with rows,
    seconds from the first receipt to the last row)."""
    since = _since(since)
    query = _SETTLE.replace(":since", f"'{since}'")
    seen, still_since, deadline = None, time.monotonic(), time.monotonic() + _DRAIN_S
    row = [0, 0, 0]
    while time.monotonic() < deadline:
        row = sql(api, query)
        if row != seen:
            seen, still_since = row, time.monotonic()
        elif time.monotonic() - still_since > 5.0:
            break
        time.sleep(1.0)
    labs, encounters, span_ms = (int(v or 0) for v in row)
    return labs // 3 + encounters, span_ms / 1000.0


def freshness(api: str, since: str) -> list[float]:
    """p50, p95, p99 of MLLP receipt to row, in seconds, over the rows received since."""
    row = sql(api, _FRESHNESS.replace(":since", f"'{_since(since)}'"))
    return [ms / 1000.0 for ms in row[0]]


def _now(api: str) -> str:
    return str(sql(api, "SELECT toString(now64(3, 'Asia/Shanghai'))")[0])


def main() -> list[dict[str, Any]]:
    data_dir = Path(tempfile.mkdtemp(prefix="hutong-e2e-"))
    hub, api, mllp_port = start_hub(data_dir)
    try:
        with Watch(hub.pid, api) as rss:
            generate(mllp_port, 200, 3, "W")  # warm up: the group joined, the first links made
            settle(api, "2000-01-01 00:00:00.000")
            since = _now(api)
            cpu_before = rss.mark()
            flat = generate(mllp_port, _FLAT_OUT, SECONDS, "F")
            messages, span = settle(api, since)
            cpu = {name: seconds - cpu_before.get(name, 0.0)
                   for name, seconds in cpu_seconds(hub.pid).items()}
            lags = dict(rss.peak_lag)
            since = _now(api)
            paced = generate(mllp_port, RATE, SECONDS, "P")
            settle(api, since)
            fresh = freshness(api, since)
    finally:
        stop_hub(hub)
        shutil.rmtree(data_dir, ignore_errors=True)
    acked_rate = flat["acked"] / SECONDS
    e2e_rate = messages / span if span else 0.0
    paced_rate = paced["acked"] / SECONDS
    print(f"\nEnd to end, hutong up on the embedded stack, {SECONDS:.0f} s per run")
    print(f"  as fast as ACKs come: {flat['acked']} ACKed ({acked_rate:.0f} msg/s, codes "
          f"{flat['codes']}); {messages} messages in the warehouse in {span:.1f} s from "
          f"the first receipt: {e2e_rate:.0f} msg/s end to end (target 10,000)")
    print(f"  offered {RATE:.0f} msg/s: {paced['acked']} ACKed ({paced_rate:.0f} msg/s, codes "
          f"{paced['codes']}), ACK p99 {paced['p99_ms']} ms; receipt to row p50 "
          f"{fresh[0]:.2f} s, p95 {fresh[1]:.2f} s, p99 {fresh[2]:.2f} s (target p95 <= 2 s)")
    per_message = {name: seconds * 1000 / max(flat["acked"], 1)
                   for name, seconds in sorted(cpu.items())}
    cpu_text = ", ".join(f"{k} {v:.2f} ms" for k, v in per_message.items())
    lag_text = ", ".join(f"{k} {v:.0f}" for k, v in sorted(lags.items()))
    print(f"  what set the pace of the first run: CPU a message ({cpu_text}); the largest "
          f"lag of each consumer group ({lag_text})")
    print(f"  peak RSS of the hub and its children: {rss.peak_mb:.0f} MB "
          f"({', '.join(f'{k} {v:.0f}' for k, v in rss.peak_by_process.items())}; "
          "target <= 2,048 MB)")
    return [
        {"name": "e2e.acked", "value": round(acked_rate), "unit": "msg/s"},
        {"name": "e2e.throughput", "value": round(e2e_rate), "unit": "msg/s",
         "target": 10_000},
        {"name": "e2e.paced_acked", "value": round(paced_rate), "unit": "msg/s",
         "offered": RATE},
        {"name": "e2e.paced_ack_p99", "value": paced["p99_ms"], "unit": "ms",
         "rate": RATE},
        {"name": "e2e.freshness_p50", "value": round(fresh[0], 3), "unit": "s", "rate": RATE},
        {"name": "e2e.freshness_p95", "value": round(fresh[1], 3), "unit": "s", "rate": RATE,
         "target": 2.0},
        {"name": "e2e.freshness_p99", "value": round(fresh[2], 3), "unit": "s", "rate": RATE},
        {"name": "e2e.peak_rss", "value": round(rss.peak_mb), "unit": "MB", "target": 2048},
        *({"name": f"e2e.cpu.{name}", "value": round(ms, 3), "unit": "ms/msg"}
          for name, ms in per_message.items()),
        *({"name": f"e2e.max_lag.{group}", "value": round(lag), "unit": "records"}
          for group, lag in sorted(lags.items())),
    ]


if __name__ == "__main__":
    main()
