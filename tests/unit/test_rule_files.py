"""Critical-value lists that change while the hub runs, and that come from the platform
above: the live rule book, what a hub publishes of its folder, which list is in force,
and what the downlink does with the upstream's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hutong.federation.rulefiles import (
    RuleFileFeed,
    RuleFilesDownlink,
    publish_rule_files,
    reconcile_file,
    sha256,
)
from hutong.metrics import Metrics
from streams.alerts.live import LiveRuleBook, folder_lists

LIST = 'version: "{version}"\nlabel: 县医院危急值目录\n'
AT = datetime(2026, 12, 5, 8, tzinfo=UTC)


def record(name: str, version: str | None, origin: str | None = None) -> dict[str, Any]:
    content = LIST.format(version=version) if version is not None else None
    return {"name": name, "content": content, "published_at": AT, "origin": origin,
            "sha256": sha256(content.encode()) if content else None}


def test_the_book_is_built_again_when_the_lists_change(tmp_path: Path) -> None:
    book = LiveRuleBook(lambda: folder_lists(tmp_path))
    assert book.for_facility("QSXRMYY").id == "hutong-default-2026.12"
    assert not book.refresh()
    (tmp_path / "QSXRMYY.yaml").write_text(LIST.format(version="1"), encoding="utf-8")
    assert book.refresh() and book.for_facility("QSXRMYY").id.endswith("+QSXRMYY-1")
    assert not book.refresh()  # nothing changed
    (tmp_path / "QSXRMYY.yaml").write_text(LIST.format(version="2"), encoding="utf-8")
    assert book.refresh() and book.for_facility("QSXRMYY").id.endswith("+QSXRMYY-2")


def test_a_list_that_does_not_load_is_left_out_and_the_others_stay(caplog: Any) -> None:
    lists = {"QSXRMYY.yaml": LIST.format(version="1"),
             "BROKEN.yaml": 'version: "2"\nrules: [{id: x, analyte: y}]\n'}
    book = LiveRuleBook(lambda: lists)
    assert book.for_facility("QSXRMYY").id.endswith("+QSXRMYY-1")
    assert book.for_facility("BROKEN").id == "hutong-default-2026.12"
    assert "BROKEN.yaml left out" in caplog.text


def test_this_hubs_own_list_wins_over_the_one_from_above() -> None:
    feed = RuleFileFeed({})
    feed.apply(record("QSXRMYY.yaml", "city", origin="CITY"))
    feed.apply(record("XZWSY.yaml", "city", origin="CITY"))
    feed.apply(record("QSXRMYY.yaml", "ours"))
    assert feed.lists() == {"QSXRMYY.yaml": LIST.format(version="ours"),
                            "XZWSY.yaml": LIST.format(version="city")}
    feed.apply(record("QSXRMYY.yaml", None))  # ours withdrawn: the city's applies
    assert feed.lists()["QSXRMYY.yaml"] == LIST.format(version="city")


class Producer:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, records: list[Any]) -> None:
        self.sent += records


def test_a_hub_publishes_what_loads_and_withdraws_only_its_own(tmp_path: Path) -> None:
    (tmp_path / "QSXRMYY.yaml").write_text(LIST.format(version="1"), encoding="utf-8")
    (tmp_path / "BROKEN.yaml").write_text("rules: [nonsense]\n", encoding="utf-8")
    published, producer = RuleFileFeed({}), Producer()
    published.apply(record("XZWSY.yaml", "city", origin="CITY"))  # from above: not ours
    assert asyncio.run(publish_rule_files(producer, tmp_path, published)) == 1  # type: ignore[arg-type]
    assert [r.key for r in producer.sent] == [b"QSXRMYY.yaml"]
    assert asyncio.run(publish_rule_files(producer, tmp_path, published)) == 0  # type: ignore[arg-type]
    (tmp_path / "QSXRMYY.yaml").unlink()
    assert asyncio.run(publish_rule_files(producer, tmp_path, published)) == 1  # type: ignore[arg-type]
    assert published.records["QSXRMYY.yaml"]["content"] is None
    assert published.records["upstream/XZWSY.yaml"]["content"] is not None  # left alone


class Downlink(RuleFilesDownlink):
    """The downlink with this hub's Kafka as a list."""

    def __init__(self, local: RuleFileFeed) -> None:
        super().__init__({}, {"bootstrap.servers": "127.0.0.1:9"}, local,
                         Metrics(CollectorRegistry()), origin="CITY")
        self.written: list[bytes] = []
        self.reported: list[str] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.written.append(key)

    def report(self, key: str, **_: Any) -> None:  # type: ignore[override]
        self.reported.append(key)


def ready_feed(*records: dict[str, Any]) -> RuleFileFeed:
    feed = RuleFileFeed({})
    for held in records:
        feed.apply(held)
    feed._ready.set()  # read to its end
    return feed


def test_the_upstreams_lists_come_down_beside_this_hubs_own() -> None:
    local = ready_feed(record("XZWSY.yaml", "ours"))
    down = Downlink(local)
    assert down.apply(record("QSXRMYY.yaml", "city-1"))  # new here
    assert down.written == [b"upstream/QSXRMYY.yaml"]
    assert not down.apply(record("QSXRMYY.yaml", "city-1"))  # the same again: nothing
    assert down.apply(record("XZWSY.yaml", "city-1"))  # ours differs: kept, reported
    assert down.reported == ["XZWSY.yaml"]
    assert local.lists()["XZWSY.yaml"] == LIST.format(version="ours")
    assert down.apply(record("QSXRMYY.yaml", None))  # withdrawn above: the copy goes
    assert "QSXRMYY.yaml" not in local.lists()
    assert down.counts == {"apply": 2, "same": 1, "conflict": 1}


def test_what_never_comes_down() -> None:
    down = Downlink(ready_feed())
    bad = {**record("QSXRMYY.yaml", "1"), "content": "rules: [nonsense]\n"}
    assert not down.apply(bad)  # would not load here
    assert down.reported == ["QSXRMYY.yaml"]
    for name in ("../evil.yaml", ".hidden.yaml", "a/b.yaml", "x" * 80 + ".yaml", "QSX.yml"):
        assert not down.apply(record(name, "1"))
    assert not down.apply(record("XZWSY.yaml", "1", origin="PROVINCE"))  # not the city's own
    assert down.written == []


CITY, OURS = b"version: 'city'\n", b"version: 'ours'\n"


def test_how_an_upstream_entry_meets_this_hubs_by_marks() -> None:
    """The rule of the facility downlink (marks of what came last)."""
    assert reconcile_file(CITY, None, None) == "apply"
    assert reconcile_file(CITY + b"#2", CITY, sha256(CITY)) == "apply"
    assert reconcile_file(CITY, CITY, sha256(CITY)) == "same"
    assert reconcile_file(CITY, OURS, None) == "conflict"
    assert reconcile_file(None, OURS, None) == "same"
