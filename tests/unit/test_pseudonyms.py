"""What the warehouse keeps of who a record is: pseudonyms, age bands, regions, clusters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from hutong.errors import ConfigError, WarehouseError
from hutong.keys import load_key
from producers.idcard import check_character
from sinks.warehouse import TABLES
from sinks.warehouse.derived import age_band, region_code
from sinks.warehouse.migrate import for_cluster, load_migrations
from sinks.warehouse.pseudonyms import PSEUDONYMISED_COLUMNS, Pseudonyms, protect
from tests.warehouse_events import IDENTITY_VALUES, SAMPLES, header

KEY = b"a key of at least sixteen bytes"
VALID_ID = "11010119360506001" + check_character("11010119360506001")


def test_pseudonym_is_keyed_stable_and_not_the_value() -> None:
    one, other = Pseudonyms(KEY), Pseudonyms(b"another key, also long enough")
    assert one.of("P123") == one.of("P123")
    assert one.of("P123") != one.of("P124")
    assert one.of("P123") != other.of("P123")
    assert one.of("P123") is not None and one.of("P123").startswith("ps_")  # type: ignore[union-attr]
    assert len(one.of("P123") or "") == 35
    assert "P123" not in (one.of("P123") or "")
    assert one.of(None) is None


def test_short_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="16 bytes"):
        Pseudonyms(b"short")


def test_key_is_made_once_and_kept(tmp_path: Path) -> None:
    first = load_key(None, tmp_path)
    assert load_key(None, tmp_path) == first
    assert len(first) == 64
    assert (tmp_path / "pseudonym.key").stat().st_mode & 0o777 == 0o600
    assert load_key("configured secret key!", tmp_path) == b"configured secret key!"


@pytest.mark.parametrize(("birth", "at", "band"), [
    (date(2026, 3, 1), date(2026, 3, 2), "<1"),
    (date(2025, 3, 2), date(2026, 3, 1), "<1"),
    (date(2025, 3, 1), date(2026, 3, 1), "1-4"),
    (date(2021, 3, 2), date(2026, 3, 1), "1-4"),
    (date(2021, 3, 1), date(2026, 3, 1), "5-9"),
    (date(1990, 12, 31), date(2026, 3, 1), "35-39"),
    (date(1941, 3, 1), date(2026, 3, 1), "85+"),
    (date(1936, 5, 6), datetime(2026, 3, 1, 9, tzinfo=UTC), "85+"),
    (date(2027, 1, 1), date(2026, 3, 1), None),  # born after the event: no age
    (None, date(2026, 3, 1), None),
    (date(2000, 1, 1), None, None),
])
def test_age_band(birth: date | None, at: date | None, band: str | None) -> None:
    assert age_band(birth, at) == band


@pytest.mark.parametrize(("number", "region"), [
    (VALID_ID, "110101"),
    ("110101360506001", "110101"),  # 15 digits, upgraded
    (VALID_ID[:-1] + ("0" if VALID_ID[-1] != "0" else "1"), None),  # wrong check digit
    ("not a number", None),
    ("", None),
    (None, None),
])
def test_region_code(number: str | None, region: str | None) -> None:
    assert region_code(number) == region


def test_protect_pseudonymises_ids_and_withholds_birth_dates_in_every_table() -> None:
    pseudonyms = Pseudonyms(KEY)
    protected = protect(TABLES, pseudonyms)
    assert protected.keys() == TABLES.keys()
    for name, make in SAMPLES.items():
        event = make()
        event["patient"] = {**event["patient"], "id_card_number": VALID_ID}
        row = dict(zip(protected[name].column_names, protected[name].to_row(event), strict=True))
        raw = dict(zip(TABLES[name].column_names, TABLES[name].to_row(event), strict=True))
        assert row["source_patient_id"] == pseudonyms.of("P123")
        assert raw["source_patient_id"] == "P123"
        assert row["patient_birth_date"] is None
        assert raw["patient_birth_date"] == date(1936, 5, 6)
        assert row["patient_age_band"] == raw["patient_age_band"] == "85+"
        assert row["patient_region_code"] == "110101"
        assert "P123" not in str(row)
        assert not any(value in str(row) for value in (*IDENTITY_VALUES, VALID_ID))


def test_protect_covers_links_reviews_merges_and_dead_letters() -> None:
    protected = protect(TABLES, Pseudonyms(KEY))
    for spec in protected.values():
        for column in spec.columns:
            if column.name in PSEUDONYMISED_COLUMNS - {"link_id"}:
                assert column.get({column.name: "X", "patient": {}}) != "X"
    dead = protected["dead-letter"]
    assert "payload" in dead.column_names
    merged = protected["patient"].columns[protected["patient"].column_names.index(
        "merged_source_patient_id")]
    assert merged.get(header("patient", merged_source_patient_id="P9")) == \
        Pseudonyms(KEY).of("P9")


def test_for_cluster_adds_on_cluster_and_replication() -> None:
    table = ("CREATE TABLE IF NOT EXISTS t\n(\n    a String\n)\n"
             "ENGINE = ReplacingMergeTree\nORDER BY a")
    clustered = for_cluster(table, "c1")
    assert clustered.startswith("CREATE TABLE IF NOT EXISTS t ON CLUSTER c1\n")
    assert "ENGINE = ReplicatedReplacingMergeTree\n" in clustered
    assert for_cluster("ALTER TABLE t ADD COLUMN IF NOT EXISTS b String", "c1") == \
        "ALTER TABLE t ON CLUSTER c1 ADD COLUMN IF NOT EXISTS b String"
    assert for_cluster("CREATE VIEW IF NOT EXISTS v AS SELECT 1", "c1") == \
        "CREATE VIEW IF NOT EXISTS v ON CLUSTER c1 AS SELECT 1"
    assert for_cluster("SELECT 1", "c1") == "SELECT 1"
    with pytest.raises(WarehouseError, match="not a plain identifier"):
        for_cluster(table, "c1; DROP TABLE x")


def test_every_shipped_ddl_statement_is_clustered() -> None:
    for migration in load_migrations():
        for statement in migration.statements:
            clustered = for_cluster(statement, "hutong")
            assert " ON CLUSTER hutong" in clustered, (migration.name, statement[:60])
            assert "ENGINE = ReplacingMergeTree" not in clustered
