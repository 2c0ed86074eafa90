"""Critical-value lists that change while the hub runs, and that come from the platform
above: the live rule book, what a hub publishes of its folder, and how the upstream's
file meets this hub's."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from hutong.federation.rulefiles import (
    RuleFileFeed,
    publish_rule_files,
    reconcile_file,
    sha256,
)
from streams.alerts.live import LiveRuleBook

LIST = 'version: "{version}"\nlabel: 县医院危急值目录\n'


def write(folder: Path, name: str, text: str, *, later: int = 0) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    if later:  # a distinct modification time, whatever the file system's resolution
        stamp = path.stat().st_mtime_ns + later * 1_000_000_000
        os.utime(path, ns=(stamp, stamp))
    return path


def test_the_book_is_read_again_when_the_folder_changes(tmp_path: Path) -> None:
    folder = tmp_path / "critical-values"
    book = LiveRuleBook(folder)  # no folder yet: the default alone
    assert book.for_facility("QSXRMYY").id == "hutong-default-2026.12"
    assert not book.refresh()
    folder.mkdir()
    write(folder, "QSXRMYY.yaml", LIST.format(version="1"))
    assert book.refresh() and book.for_facility("QSXRMYY").id.endswith("+QSXRMYY-1")
    assert not book.refresh()  # nothing changed
    write(folder, "QSXRMYY.yaml", LIST.format(version="2"), later=1)
    assert book.refresh() and book.for_facility("QSXRMYY").id.endswith("+QSXRMYY-2")


def test_a_folder_that_no_longer_loads_keeps_the_lists_in_force(tmp_path: Path,
                                                                caplog: Any) -> None:
    write(tmp_path, "QSXRMYY.yaml", LIST.format(version="1"))
    book = LiveRuleBook(tmp_path)
    write(tmp_path, "QSXRMYY.yaml", "version: \"2\"\nrules: [{id: x, analyte: y}]\n", later=1)
    assert not book.refresh()
    assert book.for_facility("QSXRMYY").id.endswith("+QSXRMYY-1")
    assert "not reloaded" in caplog.text


class Producer:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, records: list[Any]) -> None:
        self.sent += records


def test_a_hub_publishes_what_loads_and_withdraws_what_was_taken_out(tmp_path: Path) -> None:
    write(tmp_path, "QSXRMYY.yaml", LIST.format(version="1"))
    write(tmp_path, "BROKEN.yaml", "rules: [nonsense]\n")
    published, producer = RuleFileFeed({}), Producer()
    assert asyncio.run(publish_rule_files(producer, tmp_path, published)) == 1  # type: ignore[arg-type]
    assert [r.key for r in producer.sent] == [b"QSXRMYY.yaml"]
    assert asyncio.run(publish_rule_files(producer, tmp_path, published)) == 0  # type: ignore[arg-type]
    (tmp_path / "QSXRMYY.yaml").unlink()
    assert asyncio.run(publish_rule_files(producer, tmp_path, published)) == 1  # type: ignore[arg-type]
    assert published.records["QSXRMYY.yaml"]["content"] is None


CITY, OURS = b"version: 'city'\n", b"version: 'ours'\n"


@pytest.mark.parametrize(("upstream", "local", "marked", "outcome"), [
    (CITY, None, None, "apply"),  # new here
    (None, None, None, "same"),  # withdrawn, and nothing here
    (CITY + b"#2", CITY, sha256(CITY), "apply"),  # what the city sent last: updated
    (None, CITY, sha256(CITY), "apply"),  # ... or removed
    (CITY, CITY, sha256(CITY), "same"),
    (CITY, OURS, None, "conflict"),  # our own list: kept
    (CITY, OURS, sha256(CITY), "conflict"),  # the city's, edited here since: ours now
    (OURS, OURS, None, "same"),  # our own, saying the same
    (None, OURS, None, "same"),  # a withdrawal upstream never removes ours
])
def test_how_an_upstream_file_meets_this_hubs(upstream: bytes | None, local: bytes | None,
                                              marked: str | None, outcome: str) -> None:
    assert reconcile_file(upstream, local, marked) == outcome


def test_a_file_from_above_that_does_not_load_here_is_never_written(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from hutong.federation.rulefiles import RuleFilesDownlink
    from hutong.metrics import Metrics

    downlink = RuleFilesDownlink({}, {"bootstrap.servers": "127.0.0.1:9"}, tmp_path,
                                 Metrics(CollectorRegistry()), origin="CITY")
    downlink.report = lambda *a, **k: None  # type: ignore[method-assign]  # no Kafka here
    bad = {"name": "QSXRMYY.yaml", "content": "rules: [nonsense]\n", "sha256": "x"}
    assert not downlink.apply(bad)
    assert not (tmp_path / "QSXRMYY.yaml").exists()
    assert downlink.counts["conflict"] == 1
    for name in ("../evil.yaml", ".hidden.yaml", "a/b.yaml", "x" * 80 + ".yaml", "QSX.yml"):
        assert not downlink.apply({"name": name, "content": LIST.format(version="1")})
    assert list(tmp_path.iterdir()) == []
    good = {"name": "QSXRMYY.yaml", "content": LIST.format(version="1"), "sha256": "y"}
    assert downlink.apply(good) and (tmp_path / ".upstream" / "QSXRMYY.yaml.sha256").is_file()
