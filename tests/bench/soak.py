"""``make bench``: a soak. ``hutong up`` under a steady MLLP load for half an hour.

Runs ``hutong up`` as a subprocess (free ports, a data directory of its own, open
intake) and a load generator in a second process: 16 senders, each a facility
waiting for its ACK, paced to ``SOAK_RATE`` messages per second in total (default
1,000; two ORU^R01 with 3 OBX for every ADT^A01) for ``SOAK_SECONDS`` (default
1,800). The messages name ``SOAK_PATIENTS`` people (default 20,000), each with a
valid 身份证号 of their own, so the master index links as it would in a region
(the intake bench's messages give everyone one ID number: one person with every
record). Every ``SOAK_INTERVAL`` seconds (default 10) it samples

- RSS of the hub and of each child (stream worker, broker), from ``/proc``;
- open file descriptors of the same processes;
- consumer lag per group, from the hub's ``/metrics`` (``hutong_consumer_lag``);
- ACK latency (p50, p99, max) of the messages answered in the interval, measured
  from when each was due, so falling behind shows; and the ACK codes;
- the machine's load average (the soak shares it with whatever else runs);

prints a table as it goes and writes everything to ``bench/results/soak.json``
(``SOAK_OUTPUT``). A sender that falls behind sends what is due as fast as the ACKs
come, but nothing after the end: the summary says how many were offered and how
many ACKed. After the load it waits up to ``SOAK_DRAIN`` seconds (default 60) for
the lag to reach zero, counts the warehouse's rows, then stops the hub with SIGTERM.
Numbers are reported, never asserted; it is not part of CI.

    SOAK_SECONDS=120 .venv/bin/python -m tests.bench.soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from connectors.mllp.framing import Frame, FrameDecoder, frame
from producers.idcard import check_character

RATE = float(os.environ.get("SOAK_RATE", "1000"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "1800"))
INTERVAL = float(os.environ.get("SOAK_INTERVAL", "10"))
DRAIN = float(os.environ.get("SOAK_DRAIN", "60"))
SENDERS = int(os.environ.get("SOAK_SENDERS", "16"))
#: Put in every message control id: runs against one hub never reuse an id (a reused id
#: with other content is refused, AR).
RUN = os.environ.get("SOAK_RUN", "")
PATIENTS = int(os.environ.get("SOAK_PATIENTS", "20000"))
OUTPUT = Path(os.environ.get("SOAK_OUTPUT", "bench/results/soak.json"))
_PAGE = os.sysconf("SC_PAGE_SIZE")
_LAG = re.compile(r'^hutong_consumer_lag\{group="([^"]+)",topic="([^"]+)"\} ([0-9.e+-]+)$',
                  re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the load generator (a process of its own) ------------------------------------------------

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
_ORU = ("MSH|^~\\&|LIS|SOAK{s:02d}|HUTONG|REGION|{ts}||ORU^R01^ORU_R01|S{r}{s}N{n}|P|2.4\r"
        "PID|1||M{p}^^^SOAK{s:02d}^MR~{card}^^^^SFZH||{name}||{born}|{sex}\r"
        "OBR|1|S{r}{s}N{n}P|S{r}{s}N{n}F|BCP^生化^L|||{ts}||||||||血清\r"
        "OBX|1|NM|K^钾^L||{k}|mmol/L|3.5-5.5|N|||F|||{ts}\r"
        "OBX|2|NM|NA^钠^L||141|mmol/L|137-147|N|||F|||{ts}\r"
        "OBX|3|NM|GLU^葡萄糖^L||5.2|mmol/L|3.9-6.1|N|||F|||{ts}\r")
_ADT = ("MSH|^~\\&|HIS|SOAK{s:02d}|HUTONG|REGION|{ts}||ADT^A01^ADT_A01|S{r}{s}N{n}|P|2.4\r"
        "EVN|A01|{ts}\r"
        "PID|1||M{p}^^^SOAK{s:02d}^MR~{card}^^^^SFZH||{name}||{born}|{sex}\r"
        "PV1|1|I|NEURO^101^1||||||||||||||||V{s}N{n}\r")


def person(p: int) -> dict[str, str]:
    """Patient ``p`` of the pool: a name, a birth date and a valid 身份证号 (GB 11643)."""
    born = f"{1940 + p % 70}{1 + p % 12:02d}{1 + p % 28:02d}"
    first17 = f"110105{born}{p % 1000:03d}"
    name = _SURNAMES[p % 20] + _GIVEN[(p // 20) % 20] + _GIVEN[(p // 400) % 20]
    return {"card": first17 + check_character(first17), "name": name, "born": born,
            "sex": "M" if p % 2 else "F"}


def message(sender: int, n: int) -> bytes:
    """Two ORU^R01 (3 OBX each) for every ADT^A01, about a patient of the pool."""
    p = (sender * 7919 + n * 104729) % PATIENTS
    ts = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    template = _ADT if n % 3 == 2 else _ORU
    return template.format(r=RUN, s=sender, n=n, p=p, ts=ts, k=3.5 + (n % 20) / 10,
                           **person(p)).encode()


@dataclass
class Window:
    """What the senders saw in one interval."""

    latencies: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    offered: int = 0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

        return {"offered": self.offered, "acked": len(ordered), "codes": dict(self.codes),
                "errors": self.errors,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99),
                "max_ms": round(ordered[-1] * 1000, 2) if ordered else None}


async def _sender(port: int, sender: int, interval: float, start: float, end: float,
                  window: list[Window]) -> None:
    n = 0
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            window[0].errors += 1
            await asyncio.sleep(1)
            continue
        decoder = FrameDecoder(1 << 20)
        try:
            while (due := start + n * interval) < end and time.perf_counter() < end:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                writer.write(frame(message(sender, n)))
                frames: list[bytes] = []
                while not frames:
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionError("the hub closed the connection")
                    frames = [i.payload for i in decoder.feed(data) if isinstance(i, Frame)]
                current = window[0]
                current.latencies.append(time.perf_counter() - due)
                code = (frames[0].split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in frames[0]
                        else "??")
                current.codes[code] = current.codes.get(code, 0) + 1
                n += 1
            writer.close()
            return
        except (ConnectionError, OSError):
            window[0].errors += 1
            writer.close()
            await asyncio.sleep(1)


async def generate(port: int, rate: float, seconds: float, interval: float) -> None:
    """Send at ``rate`` for ``seconds``; a JSON line of the last window every ``interval``."""
    window = [Window()]
    start = time.perf_counter() + 0.2
    end = start + seconds
    senders = asyncio.gather(*(_sender(port, s, SENDERS / rate, start, end, window)
                               for s in range(SENDERS)))
    next_report = start + interval
    reported = start
    while not senders.done():
        await asyncio.sleep(max(0.0, min(next_report, end + 60) - time.perf_counter()))
        now = time.perf_counter()
        if now >= next_report or senders.done():
            done, window[0] = window[0], Window()
            done.offered = _due(reported, min(now, end), start, rate)
            reported = min(now, end)
            print(json.dumps(done.summary()), flush=True)
            next_report += interval
        if now > end + 60:  # a sender stuck on a hub that stopped answering
            senders.cancel()
            break
    await asyncio.gather(senders, return_exceptions=True)
    print(json.dumps({**window[0].summary(), "final": True}), flush=True)


def _due(since: float, until: float, start: float, rate: float) -> int:
    """Messages due between ``since`` and ``until`` at ``rate``."""
    return max(0, round((until - start) * rate) - round((since - start) * rate))


# --- what the soak watches --------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def processes(root: int) -> Iterator[tuple[int, str]]:
    """``root`` and its descendants: (pid, a short name)."""
    tree = _children()
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, ()))
        try:
            argv = (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
        except OSError:
            continue
        yield pid, _name(pid, root, [a.decode(errors="replace") for a in argv if a])


def _name(pid: int, root: int, argv: list[str]) -> str:
    if pid == root:
        return "hub"
    text = " ".join(argv)
    if "streams" in text and "--worker" in text:
        return f"stream-worker-{argv[-1]}"
    if "tansu" in text:
        return "broker"
    return Path(argv[0]).name if argv else str(pid)


def rss_and_fds(pid: int) -> tuple[int, int]:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return 0, 0
    return pages * _PAGE, fds


def consumer_lag(api: str) -> dict[str, float]:
    try:
        text = httpx.get(f"{api}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    lag: dict[str, float] = {}
    for group, _topic, value in _LAG.findall(text):
        lag[group] = lag.get(group, 0.0) + float(value)
    return lag


@dataclass
class Sample:
    t: float
    rss_mb: dict[str, float]
    fds: dict[str, int]
    lag: dict[str, float]
    load: dict[str, Any]
    loadavg: float = 0.0

    @property
    def total_rss(self) -> float:
        return round(sum(self.rss_mb.values()), 1)


def sample(t: float, hub_pid: int, api: str, load: dict[str, Any]) -> Sample:
    rss: dict[str, float] = {}
    fds: dict[str, int] = {}
    for pid, name in processes(hub_pid):
        size, open_fds = rss_and_fds(pid)
        rss[name] = round(rss.get(name, 0.0) + size / 2**20, 1)
        fds[name] = fds.get(name, 0) + open_fds
    return Sample(round(t, 1), rss, fds, consumer_lag(api), load, round(os.getloadavg()[0], 2))


def _row(s: Sample) -> str:
    load = s.load
    lag = sum(s.lag.values())
    p99 = load.get("p99_ms")
    return (f"{s.t:7.0f} {load.get('acked', 0) / INTERVAL:8.0f} "
            f"{(load.get('p50_ms') or 0):8.1f} {(p99 or 0):8.1f} "
            f"{s.total_rss:9.1f} {s.rss_mb.get('hub', 0):8.1f} {sum(s.fds.values()):6d} "
            f"{lag:9.0f} {s.loadavg:5.1f}  "
            f"{','.join(f'{k}={v}' for k, v in load.get('codes', {}).items())}")


HEADER = (f"{'t (s)':>7} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>9} "
          f"{'hub MB':>8} {'fds':>6} {'lag':>9} {'load':>5}  ACK codes")


# --- the soak itself --------------------------------------------------------------------------


def start_hub(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, int]:
    ports = {"MLLP_PORT": free_port(), "HTTP_PORT": free_port(), "KAFKA_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUTONG_")}
    env |= {f"HUTONG_{name}": str(port) for name, port in ports.items()}
    env |= {"HUTONG_DATA_DIR": str(data_dir), "HUTONG_INTAKE_OPEN": "true",
            "HUTONG_MLLP_HOST": "127.0.0.1", "HUTONG_HTTP_HOST": "127.0.0.1",
            "HUTONG_CLICKHOUSE_HTTP_PORT": "", "HUTONG_LOG_LEVEL": "WARNING"}
    log = (data_dir / "hub.log").open("wb")
    hub = subprocess.Popen([sys.executable, "-m", "hutong", "up"], env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{ports['HTTP_PORT']}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise SystemExit(f"hutong up exited ({hub.returncode}); see {data_dir / 'hub.log'}")
        try:
            if httpx.get(f"{api}/healthz", timeout=2).status_code == 200:
                return hub, api, ports["MLLP_PORT"]
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    hub.terminate()
    raise SystemExit("hutong up did not become healthy within 180 s")


def stop_hub(hub: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an operator stops it; SIGKILL after a minute."""
    hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(60)
    except subprocess.TimeoutExpired:
        hub.kill()


def _read_load(generator: subprocess.Popen[str], windows: list[dict[str, Any]]) -> None:
    assert generator.stdout is not None
    for line in generator.stdout:
        if line.strip():
            windows.append(json.loads(line))


def summarise(samples: list[Sample], windows: list[dict[str, Any]]) -> dict[str, Any]:
    loaded = [s for s in samples if s.load]
    first, last = (loaded[0], loaded[-1]) if loaded else (samples[0], samples[-1])
    p99s = [w["p99_ms"] for w in windows if w.get("p99_ms") is not None]
    codes: dict[str, int] = {}
    for w in windows:
        for code, n in w.get("codes", {}).items():
            codes[code] = codes.get(code, 0) + n
    return {
        "offered": sum(w.get("offered", 0) for w in windows),
        "acked": sum(w.get("acked", 0) for w in windows), "codes": codes,
        "sender_errors": sum(w.get("errors", 0) for w in windows),
        "rss_mb_first": first.total_rss, "rss_mb_last": last.total_rss,
        "rss_mb_max": max(s.total_rss for s in samples),
        "hub_rss_mb_first": first.rss_mb.get("hub"), "hub_rss_mb_last": last.rss_mb.get("hub"),
        "fds_first": sum(first.fds.values()), "fds_last": sum(last.fds.values()),
        "fds_max": max(sum(s.fds.values()) for s in samples),
        "lag_max": max((sum(s.lag.values()) for s in samples), default=0),
        "lag_after_drain": sum(samples[-1].lag.values()),
        "p99_ms_median_window": sorted(p99s)[len(p99s) // 2] if p99s else None,
        "p99_ms_worst_window": max(p99s) if p99s else None,
        "loadavg_max": max(s.loadavg for s in samples),
    }


def warehouse_rows(api: str) -> dict[str, int]:
    """Rows the warehouse holds now (the soak's hub answers this machine as an admin)."""
    query = ("SELECT (SELECT count() FROM hutong.lab_results) AS lab_results, "
             "(SELECT count() FROM hutong.patients) AS patients, "
             "(SELECT count() FROM hutong.encounters) AS encounters, "
             "(SELECT count() FROM hutong.dead_letters) AS dead_letters")
    try:
        answer = httpx.post(f"{api}/api/v1/sql", json={"query": query}, timeout=60).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return dict(zip(answer.get("columns", []), answer.get("rows", [[]])[0], strict=False))


def soak() -> dict[str, Any]:
    data_dir = Path(os.environ.get("SOAK_DATA_DIR") or tempfile.mkdtemp(prefix="hutong-soak-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"soak: {RATE:g} msg/s for {SECONDS:g} s, sampled every {INTERVAL:g} s; "
          f"hub data in {data_dir}", flush=True)
    hub, api, mllp_port = start_hub(data_dir)
    samples: list[Sample] = []
    windows: list[dict[str, Any]] = []
    try:
        started = time.monotonic()
        samples.append(sample(0.0, hub.pid, api, {}))
        print(HEADER, flush=True)
        print(_row(samples[-1]), flush=True)
        generator = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.soak", "--generate", str(mllp_port)],
            stdout=subprocess.PIPE, text=True)
        reader = threading.Thread(target=_read_load, args=(generator, windows), daemon=True)
        reader.start()
        seen = 0
        while reader.is_alive() or seen < len(windows):
            time.sleep(0.2)
            if seen < len(windows):
                samples.append(sample(time.monotonic() - started, hub.pid, api, windows[seen]))
                seen += 1
                print(_row(samples[-1]), flush=True)
            if hub.poll() is not None:
                generator.terminate()
                raise SystemExit(f"the hub exited during the soak; see {data_dir / 'hub.log'}")
        drain_end = time.monotonic() + DRAIN
        while time.monotonic() < drain_end:
            time.sleep(min(INTERVAL, 5.0))
            samples.append(sample(time.monotonic() - started, hub.pid, api, {}))
            print(_row(samples[-1]), flush=True)
            if samples[-1].lag and not sum(samples[-1].lag.values()):
                break
        rows = warehouse_rows(api)
    finally:
        stop_hub(hub)
    result = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "rate": RATE, "seconds": SECONDS, "interval": INTERVAL, "senders": SENDERS,
              "cpus": os.cpu_count(), "hub_exit_code": hub.returncode,
              "summary": summarise(samples, windows) | {"warehouse_rows": rows},
              "samples": [asdict(s) | {"rss_mb_total": s.total_rss} for s in samples]}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if "SOAK_DATA_DIR" not in os.environ and not os.environ.get("SOAK_KEEP"):
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generate", type=int, metavar="PORT",
                        help="(internal) be the load generator against this MLLP port")
    args = parser.parse_args()
    if args.generate:
        asyncio.run(generate(args.generate, RATE, SECONDS, INTERVAL))
        return
    result = soak()
    print("\nsummary:", json.dumps(result["summary"], indent=2), f"\nwritten to {OUTPUT}",
          sep="\n")


if __name__ == "__main__":
    main()
