"""``make bench`` (``python -m tests.bench``): every benchmark in one go, one results file.

Runs, on the embedded stack and in this order: MLLP intake beside python-hl7 and
librdkafka alone (:mod:`tests.bench.mllp_intake`); the EMPI linker on a
synthetic Chinese population (:mod:`tests.bench.empi_population`) and on FEBRL4
beside Splink 5 (:mod:`tests.bench.febrl`); the stream worker's translation
stage and alert latency (:mod:`tests.bench.streams_stage`); end to end, MLLP to
warehouse rows, with peak RSS (:mod:`tests.bench.end_to_end`); and last the soak
(:mod:`tests.bench.soak`, ``SOAK_SECONDS``, default 1,800; 0 leaves it out).

Writes ``bench/results/latest.json`` (``BENCH_OUTPUT``): when, on what machine,
and one entry per figure (name, value, unit; where there is one, the peer and its
figure from the same run, the library limit, the ratio, and the target), and the
same as a table in ``latest.txt`` beside it. ``BENCH_ONLY=febrl,end_to_end`` runs
some. Figures are reported, never asserted.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUTPUT = Path(os.environ.get("BENCH_OUTPUT", "bench/results/latest.json"))
BENCHES = ("mllp_intake", "empi_population", "febrl", "streams_stage", "end_to_end")


def run(name: str) -> tuple[list[dict[str, Any]], float, str | None]:
    """A benchmark's figures, its wall time, and its failure (None when it ran)."""
    main: Callable[[], list[dict[str, Any]] | None] = importlib.import_module(
        f"tests.bench.{name}").main
    started = time.perf_counter()
    try:
        found = main() or []
    except Exception as exc:  # one benchmark failing must not lose the others' figures
        return [], time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    return [{"bench": name, **figure} for figure in found], time.perf_counter() - started, None


def soak() -> list[dict[str, Any]]:
    """The soak in its own process (its generator re-enters its module); its summary."""
    if float(os.environ.get("SOAK_SECONDS", "1800")) <= 0:
        return []
    subprocess.run([sys.executable, "-m", "tests.bench.soak"], check=True)
    summary = json.loads(Path(os.environ.get("SOAK_OUTPUT", "bench/results/soak.json"))
                         .read_text())["summary"]
    return [{"bench": "soak", "name": f"soak.{key}", "value": summary[key],
             "unit": unit} for key, unit in (("offered", "messages"), ("acked", "messages"),
                                             ("rss_mb_max", "MB"), ("lag_after_drain",
                                                                    "records"),
                                             ("p99_ms_median_window", "ms"))]


def table(figures: list[dict[str, Any]]) -> str:
    lines = [f"{'figure':38} {'value':>12} {'unit':10} {'peer / limit':>14} {'ratio':>8} "
             f"{'target':>8}"]
    for f in figures:
        other = f.get("peer_value", f.get("limit"))
        lines.append(f"{f['name']:38} {_show(f.get('value')):>12} {f.get('unit', ''):10} "
                     f"{_show(other):>14} {_show(f.get('ratio')):>8} "
                     f"{_show(f.get('target')):>8}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def main() -> None:
    only = [n for n in os.environ.get("BENCH_ONLY", "").split(",") if n]
    figures: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name in only or BENCHES:
        if name == "soak":
            continue
        found, seconds, failure = run(name)
        figures += found
        timings[name] = round(seconds, 1)
        if failure is not None:
            failures[name] = failure
            print(f"\n{name} failed: {failure}", file=sys.stderr)
    if not only or "soak" in only:
        figures += soak()
    result = {"run_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "seconds": timings, "failures": failures, "figures": figures}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    text = table(figures)
    OUTPUT.with_suffix(".txt").write_text(text + "\n")
    print(f"\n{text}\n\nwritten to {OUTPUT} and {OUTPUT.with_suffix('.txt')}")
    if failures:
        raise SystemExit(f"benchmarks that failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
