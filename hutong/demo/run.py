"""``hutong demo``: the hub on its embedded defaults, fed by the bundled feed."""

from __future__ import annotations

import asyncio
import importlib.resources
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from connectors.mllp.client import MLLPClient
from hutong.config import Settings
from hutong.hub import Hub
from hutong.sender import ack_summary
from hutong.signals import until_signalled
from producers.hl7v2.files import parse_batch

__all__ = ["TRY_QUERY", "feed_files", "run_demo"]

TRY_QUERY = ("SELECT facility_id, test_code, count() AS n, round(avg(value_numeric), 2) AS mean "
             "FROM hutong.lab_results GROUP BY facility_id, test_code ORDER BY facility_id, "
             "test_code")
_WAIT_S = 120.0


def _program() -> str:
    """How the user can call hutong again: ``.venv/bin/hutong`` from a checkout."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "hutong" and argv0.is_absolute():
        try:
            return str(argv0.relative_to(Path.cwd()))
        except ValueError:
            return str(argv0)
    return str(argv0) if argv0.name == "hutong" else "hutong"


def feed_files() -> list[Path]:
    """The bundled sample feed files."""
    root = importlib.resources.files("hutong.demo").joinpath("feeds")
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".hl7"))


async def _send_all(hub: Hub, console: Console) -> tuple[Counter[str], Counter[str]]:
    codes: Counter[str] = Counter()
    per_facility: Counter[str] = Counter()
    async with MLLPClient("127.0.0.1", hub.settings.mllp_port) as client:
        for path in feed_files():
            for message in parse_batch(path.read_bytes()).messages:
                code, control_id, text = ack_summary(await client.send(message))
                codes[code] += 1
                per_facility[path.name] += 1
                if code != "AA":
                    console.print(f"  [yellow]{code}[/] {control_id} ({path.name}): {text}",
                                  soft_wrap=True)
    return codes, per_facility


def _count(hub: Hub, sql: str) -> int:
    assert hub.warehouse is not None  # noqa: S101
    _, rows = hub.warehouse.query_rows(sql)
    return int(rows[0][0])


async def _wait_for_rows(hub: Hub, expected_letters: int, console: Console) -> tuple[int, int]:
    deadline = time.monotonic() + _WAIT_S
    with console.status("waiting for the warehouse …"):
        while True:
            rows = _count(hub, "SELECT count() FROM hutong.lab_results FINAL")
            letters = _count(hub, "SELECT count() FROM hutong.dead_letters FINAL "
                                  "WHERE stage = 'producer'")
            if rows > 0 and letters >= expected_letters:
                await asyncio.sleep(1.0)  # let the last batch settle
                return (_count(hub, "SELECT count() FROM hutong.lab_results FINAL"),
                        _count(hub, "SELECT count() FROM hutong.dead_letters FINAL"))
            if time.monotonic() > deadline:
                raise TimeoutError(f"the warehouse has {rows} lab rows after {_WAIT_S:.0f} s")
            await asyncio.sleep(0.5)


_PEOPLE = """
SELECT count() AS records, uniqExact(empi_id) AS people,
       uniqExactIf(empi_id, facilities > 1) AS across
FROM (SELECT facility_id, source_patient_id, empi_id,
             uniqExact(facility_id) OVER (PARTITION BY empi_id) AS facilities
      FROM hutong.current_patient_links
      WHERE (facility_id, source_patient_id) IN (
          SELECT facility_id, source_patient_id FROM hutong.lab_results))
"""


async def _wait_for_links(hub: Hub, console: Console) -> tuple[int, int, int]:
    """Wait until every patient with results has a link; (records, people, across)."""
    assert hub.warehouse is not None  # noqa: S101
    deadline = time.monotonic() + _WAIT_S
    patients = _count(hub, "SELECT uniqExact(facility_id, source_patient_id) "
                           "FROM hutong.lab_results")
    with console.status("waiting for the master index …"):
        while True:
            records, people, across = hub.warehouse.query_rows(_PEOPLE)[1][0]
            if records >= patients or time.monotonic() > deadline:
                return int(records), int(people), int(across)
            await asyncio.sleep(0.5)


async def _wait_for_documents(hub: Hub, console: Console) -> int:
    """Wait until the document store stops growing (lab reports assembled); how many."""
    assert hub.documents is not None  # noqa: S101
    deadline = time.monotonic() + _WAIT_S
    seen, steady = -1, 0
    with console.status("waiting for the document store …"):
        while time.monotonic() < deadline and steady < 3:
            stored = await asyncio.to_thread(hub.documents.count)
            steady = steady + 1 if stored == seen and stored > 0 else 0
            seen = stored
            await asyncio.sleep(0.5)
    return max(seen, 0)


DEMO_FACILITIES = Path(__file__).with_name("facilities.yaml")
DEMO_MAPS = Path(__file__).with_name("terminology")

_CODES = """
SELECT countIf(standard_code IS NOT NULL) AS translated,
       countIf(has(unmapped, 'test_code')) AS unmapped
FROM hutong.lab_results
"""
_UNMAPPED = """
SELECT facility_id, local_code, sum(count) FROM hutong.unmapped_codes
WHERE code_system = 'lab-test' GROUP BY facility_id, local_code ORDER BY facility_id, local_code
"""


async def run_demo(settings: Settings, console: Console, *, keep: bool = False) -> None:
    if settings.facility_registry_path is None:
        # The demo's facilities become this data directory's registry, so `hutong up` and
        # `hutong send hutong/demo/feeds` work on it afterwards as the README shows.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO_FACILITIES, settings.data_dir / "facilities.yaml")
        console.print(f"registered the demo's three facilities in "
                      f"{settings.data_dir / 'facilities.yaml'}")
    maps = settings.terminology_dir or settings.data_dir / "terminology"
    if not maps.exists():  # the demo facilities' code maps, as a data steward would drop them
        shutil.copytree(DEMO_MAPS, maps)
        console.print(f"put the demo's code maps in {maps}")
    hub = Hub(settings)
    console.print("starting the hub (embedded broker, warehouse, streams) …")
    await hub.start()
    try:
        await hub.wait_ready()
        codes, per_file = await _send_all(hub, console)
        rows, letters = await _wait_for_rows(hub, codes["AE"] + codes["AR"], console)
        records, people, across = await _wait_for_links(hub, console)
        documents = await _wait_for_documents(hub, console)
        assert hub.warehouse is not None  # noqa: S101
        translated, unmapped = hub.warehouse.query_rows(_CODES)[1][0]
        missing = ", ".join(f"{code} at {facility} ({n})" for facility, code, n
                            in hub.warehouse.query_rows(_UNMAPPED)[1])
        table = Table(title="hutong demo", show_header=False)
        table.add_row("messages sent (MLLP)", str(sum(codes.values())))
        for code, n in sorted(codes.items()):
            table.add_row(f"  ACK {code}", str(n))
        for name, n in sorted(per_file.items()):
            table.add_row(f"  from {name}", str(n))
        table.add_row("lab results in warehouse", str(rows))
        table.add_row("patient records linked (EMPI)", str(records))
        table.add_row("  people they are", str(people))
        table.add_row("  people seen at 2+ facilities", str(across))
        table.add_row("lab tests translated to LOINC", str(translated))
        table.add_row("  left with a local code", str(unmapped))
        table.add_row("shared documents stored (检验报告 CDA)", str(documents))
        table.add_row("dead letters in warehouse", str(letters))
        console.print(table)
        if missing:
            console.print(f"No code map yet for: {missing} — see `{_program()} terminology "
                          "unmapped`; add a map, then `hutong replay --facility ...`.",
                          soft_wrap=True, highlight=False)
        console.print("Try a query:")
        console.print(f'  {_program()} sql "{TRY_QUERY}"', soft_wrap=True, highlight=False)
        if keep:
            console.print(f"The hub keeps running ({hub.settings.api_url}); Ctrl-C stops it. "
                          f"The exchange monitor (交换监控): {hub.settings.api_url}/console",
                          soft_wrap=True, highlight=False)
            await until_signalled()
    finally:
        await hub.stop()
