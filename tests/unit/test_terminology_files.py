"""Map files: CSV and YAML read into map entries, problems reported, changes found."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hutong.demo.feed import FACILITIES, generate
from hutong.errors import HutongError
from streams.terminology import files
from streams.terminology.files import (
    DEFAULT_TARGET_SYSTEMS,
    MapFileError,
    diff_entries,
    diff_loads,
    file_version,
    load_folder,
    read_map_file,
)
from streams.terminology.maps import KINDS, MapEntry

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
BOM = b"\xef\xbb\xbf"
HEADER = "facility_id,source_system,local_code,target_system,target_code,target_display\n"
DEMO = Path(__file__).parents[2] / "hutong" / "demo" / "terminology"


def read(text: str | bytes, path: str = "maps/f1.csv") -> list[tuple[str, ...]]:
    data = text.encode() if isinstance(text, str) else text
    loaded = read_map_file(data, path, updated_at=AT)
    return [(e.facility_id, e.source_system, e.local_code, e.target_system, e.target_code,
             str(e.target_display)) for e in loaded.entries]


def test_csv_with_a_byte_order_mark() -> None:
    data = BOM + (HEADER + "F1,lab-test,K,LOINC,2823-3,Potassium\r\n").encode()
    loaded = read_map_file(data, "f1.csv", updated_at=AT)
    assert loaded.problems == ()
    assert loaded.entries == (MapEntry("F1", "lab-test", "K", "LOINC", "2823-3", "Potassium",
                                       file_version(data), AT),)


def test_csv_comments_blank_rows_column_order_and_defaults() -> None:
    text = ("# sample data\n"
            "target_code,local_code,source_system,facility_id,map_version\n"
            "\n"
            "14749-6,GLU,LAB-TEST,F1,2026.12\n"
            ",,,,\n"                              # an empty row from a spreadsheet
            "1,XB-M,sex,*,\n")
    loaded = read_map_file(text.encode(), "f1.csv", updated_at=AT)
    assert loaded.problems == ()
    glucose, sex = loaded.entries
    assert (glucose.source_system, glucose.target_system, glucose.map_version) == (
        "lab-test", "LOINC", "2026.12")
    # the kind's default system, the display from the built-in table, the file's hash version
    assert (sex.facility_id, sex.target_system, sex.target_display, sex.map_version) == (
        "*", "GB/T 2261.1", "男性", file_version(text.encode()))
    assert loaded.lines == (4, 6)


@pytest.mark.parametrize(("row", "reason"), [
    ("F1,lab-test,,LOINC,2823-3,", "local_code empty"),
    (",lab-test,K,LOINC,2823-3,", "facility_id empty"),
    ("F1,lab-test,K,LOINC,,", "target_code empty"),
    ("F1,labtest,K,LOINC,2823-3,", "source_system 'labtest' is not one of"),
    ("F1,lab-test,K,LOINC,2823-4,", "not a LOINC code"),
    ("F1,lab-test,K,LN,2823,", "not a LOINC code"),
    ("F1,sex,X,GB/T 2261.1,3,", "is not a GB/T 2261.1 code"),
    ("F1,ethnicity,17,,97,", "is not a GB 3304 code"),
    ("F1,drug,D001,,YP001,", "kind 'drug' has no default"),
    ("F1,lab-test,K,LOINC,2823-3", "5 cells where the header has 6"),
    ("F1,lab-test,K,LOINC,2823-3,x,y", "7 cells where the header has 6"),
    ('F1,lab-test,"K"x,LOINC,2823-3,', "not readable as CSV"),
])
def test_a_bad_csv_row_is_reported_with_file_and_line(row: str, reason: str) -> None:
    text = "# comment\n" + HEADER + "F1,lab-test,NA,LOINC,2951-2,\n" + row + "\n" + \
        "F1,lab-test,GLU,LOINC,14749-6,\n"
    loaded = read_map_file(text.encode(), "maps/f1.csv", updated_at=AT)
    assert [e.local_code for e in loaded.entries] == ["NA", "GLU"]   # the others still load
    (problem,) = loaded.problems
    assert (problem.path, problem.line) == ("maps/f1.csv", 4)
    assert reason in problem.reason
    assert str(problem).startswith("maps/f1.csv:4: ")


@pytest.mark.parametrize(("header", "reason"), [
    ("facility_id,source_system,local_code,target_code,target_dispaly", "unknown column"),
    ("facility_id,source_system,target_code", "missing column(s): local_code"),
    ("facility_id,source_system,local_code,target_code,local_code", "repeated column"),
])
def test_a_bad_header_loses_the_file(header: str, reason: str) -> None:
    loaded = read_map_file(f"{header}\nF1,lab-test,K,2823-3,x\n".encode(), "f.csv",
                           updated_at=AT)
    assert loaded.entries == () and loaded.readable is False
    assert [(p.line, reason in p.reason) for p in loaded.problems] == [(1, True)]


def test_a_file_that_is_not_utf8_is_reported() -> None:
    data = (HEADER + "F1,lab-test,K,LOINC,2823-3,钾\n").encode("gb18030")
    loaded = read_map_file(data, "f1.csv", updated_at=AT)
    assert loaded.entries == () and loaded.readable is False
    (problem,) = loaded.problems
    assert problem.line == 2 and "not UTF-8" in problem.reason


YAML = """\
# sample data
version: "2026.10"
facility_id: F2
source_system: lab-test
target_system: LOINC
maps:
  - {local_code: K, target_code: 2823-3, target_display: Potassium}
  - local_code: 01
    target_code: 14749-6
  - {local_code: "yes", target_code: 718-7, facility_id: "*"}
  - {local_code: M, target_code: "1", source_system: sex, target_system: GB/T 2261.1}
"""


def test_yaml_defaults_overrides_and_text_as_written() -> None:
    loaded = read_map_file(YAML.encode(), "f2.yaml", updated_at=AT)
    assert loaded.problems == ()
    assert [(e.facility_id, e.source_system, e.local_code, e.target_system, e.target_code,
             e.target_display, e.map_version) for e in loaded.entries] == [
        ("F2", "lab-test", "K", "LOINC", "2823-3", "Potassium", "2026.10"),
        ("F2", "lab-test", "01", "LOINC", "14749-6", None, "2026.10"),   # 01 stays 01
        ("*", "lab-test", "yes", "LOINC", "718-7", None, "2026.10"),
        ("F2", "sex", "M", "GB/T 2261.1", "1", "男性", "2026.10"),
    ]
    assert loaded.lines == (7, 8, 10, 11)


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("maps:\n  - {local_code: K, target_code: 2823-3}\n",
     2, "map 1: facility_id, source_system empty"),
    ("facility_id: F\nsource_system: lab-test\nmaps:\n  - {local_code: K, target: 2823-3}\n",
     4, "map 1: unknown key(s): target"),
    ("facility_id: F\nsource_system: lab-test\nmaps:\n  - K\n", 4, "map 1: not a mapping"),
    ("facility_id: F\nsource_system: lab-test\nmaps:\n  - {local_code: [K], target_code: x}\n",
     4, "map 1: not a mapping of plain text"),
])
def test_a_bad_yaml_map_is_reported_with_its_line(text: str, line: int, reason: str) -> None:
    loaded = read_map_file(text.encode(), "f.yml", updated_at=AT)
    assert loaded.entries == () and loaded.readable is True
    assert [(p.line, p.reason.startswith(reason)) for p in loaded.problems] == [(line, True)]


@pytest.mark.parametrize(("text", "reason"), [
    ("facility_id: F\nmaps: [\n", "not readable as YAML"),
    ("- a\n- b\n", "not a mapping"),
    ("", "empty"),
    ("facility_id: F\nmapz: []\n", "unknown key(s): mapz"),
    ("facility_id: F\n", "maps is missing"),
    ("facility_id: [F]\nmaps: []\n", "not plain text"),
])
def test_an_unreadable_yaml_file(text: str, reason: str) -> None:
    loaded = read_map_file(text.encode(), "f.yaml", updated_at=AT)
    assert loaded.entries == () and loaded.readable is False
    assert [reason in p.reason for p in loaded.problems] == [True]


def test_the_hash_version_changes_with_any_byte() -> None:
    text = HEADER + "F1,lab-test,K,LOINC,2823-3,Potassium\n"
    first = read_map_file(text.encode(), "f.csv", updated_at=AT)
    again = read_map_file(text.encode(), "f.csv", updated_at=LATER)
    edited = read_map_file(text.replace("Potassium", "potassium").encode(), "f.csv",
                           updated_at=AT)
    assert first.version == again.version == first.entries[0].map_version
    assert len(first.version) == 12 and int(first.version, 16) >= 0
    assert edited.entries[0].map_version != first.entries[0].map_version


def write(folder: Path, name: str, text: str | bytes) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


def test_a_folder_is_read_recursively_and_duplicates_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", HEADER + "F1,lab-test,K,LOINC,2823-3,\n")
    write(tmp_path, "sub/b.yml", "facility_id: F1\nsource_system: lab-test\nmaps:\n"
                                 "  - {local_code: NA, target_code: 2951-2}\n"
                                 "  - {local_code: K, target_code: 6298-4}\n")
    write(tmp_path, "sub/c.YAML", "facility_id: F2\nsource_system: sex\nmaps:\n"
                                  "  - {local_code: X, target_code: '9'}\n")
    write(tmp_path, "~$a.csv", b"\x00lock")           # an Excel lock file
    write(tmp_path, ".hidden/d.csv", "junk")
    write(tmp_path, "notes.txt", "not a map file")
    loaded = load_folder(tmp_path, now=AT)
    assert [(e.facility_id, e.local_code, e.target_code) for e in loaded.entries] == [
        ("F1", "K", "2823-3"), ("F1", "NA", "2951-2"), ("F2", "X", "9")]
    assert list(loaded.files) == ["a.csv", "sub/b.yml", "sub/c.YAML"]
    (problem,) = loaded.problems
    assert (problem.path, problem.line) == ("sub/b.yml", 5)
    assert "the map at a.csv:2 is used" in problem.reason
    with pytest.raises(MapFileError, match=r"1 problem\(s\) in map files: sub/b.yml:5"):
        loaded.raise_for_problems()


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MapFileError) as raised:
        load_folder(tmp_path / "nowhere")
    assert isinstance(raised.value, HutongError)


def entry(code: str, target: str, version: str = "v1", **more: object) -> MapEntry:
    return MapEntry("F1", "lab-test", code, "LOINC", target, None, version, AT,
                    bool(more.get("deleted", False)))


def test_diff_entries() -> None:
    before = [entry("K", "2823-3"), entry("NA", "2951-2"), entry("GLU", "14749-6")]
    after = [MapEntry("F1", "lab-test", "K", "LOINC", "2823-3", None, "v1", LATER),  # time only
             entry("NA", "2947-0"), entry("HGB", "718-7")]
    changes = diff_entries(before, after)
    assert [e.local_code for e in changes.added] == ["HGB"]
    assert [(e.local_code, e.target_code) for e in changes.changed] == [("NA", "2947-0")]
    assert [e.local_code for e in changes.removed] == ["GLU"]
    published = changes.to_publish(LATER)
    assert [(e.local_code, e.deleted) for e in published] == [
        ("HGB", False), ("NA", False), ("GLU", True)]
    assert published[-1].updated_at == LATER
    assert not diff_entries(before, before)
    assert diff_entries(before, [*before[:2], entry("GLU", "14749-6", version="v2")]).changed


def test_diff_loads_keeps_the_maps_of_a_file_that_became_unreadable(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", HEADER + "F1,lab-test,K,LOINC,2823-3,\n")
    write(tmp_path, "b.csv", HEADER + "F1,lab-test,NA,LOINC,2951-2,\n")
    before = load_folder(tmp_path, now=AT)
    write(tmp_path, "a.csv", "facility_id,source_system,local_code,target_code,oops\n")
    write(tmp_path, "b.csv", HEADER)                     # its only map deleted on purpose
    after = load_folder(tmp_path, now=LATER)
    changes = diff_loads(before, after)
    assert (changes.added, changes.changed) == ((), ())
    assert [e.local_code for e in changes.removed] == ["NA"]


def test_every_kind_but_drug_has_a_default_system() -> None:
    assert set(DEFAULT_TARGET_SYSTEMS) == KINDS - {"drug"}


def test_demo_maps_cover_the_demo_feed_but_one_code_on_purpose() -> None:
    loaded = load_folder(DEMO, now=AT)
    assert loaded.problems == ()
    mapped = {(e.facility_id, e.local_code) for e in loaded.entries}
    sent = {(fac.facility_id, segment.split("|")[3].split("^")[0])
            for fac, messages in generate().items() for message in messages
            for segment in message.split("\r") if segment.startswith("OBX|")}
    assert {f.facility_id for f in FACILITIES} == {facility for facility, _ in sent}
    assert sent - mapped == {("HHXWSY", "CREA")}
    assert all(e.target_system == "LOINC" for e in loaded.entries)


def docstring_examples() -> list[str]:
    """The literal blocks (after ``::``) of the files module's docstring."""
    blocks, lines = [], (files.__doc__ or "").splitlines()
    for number, line in enumerate(lines):
        if line.endswith("::"):
            block = []
            for following in lines[number + 2:]:
                if following and not following.startswith("    "):
                    break
                block.append(following[4:])
            blocks.append("\n".join(block).strip() + "\n")
    return blocks


def test_the_documented_examples_load() -> None:
    csv_text, yaml_text = docstring_examples()
    from_csv = read_map_file(csv_text.encode(), "doc.csv", updated_at=AT)
    from_yaml = read_map_file(yaml_text.encode(), "doc.yaml", updated_at=AT)
    assert (from_csv.problems, from_yaml.problems) == ((), ())
    assert [(e.facility_id, e.local_code, e.target_system, e.target_code)
            for e in from_csv.entries + from_yaml.entries] == [
        ("QSXRMYY", "K", "LOINC", "2823-3"), ("QSXRMYY", "GLU", "LOINC", "14749-6"),
        ("*", "X", "GB/T 2261.1", "9"), ("QSXZYY", "K", "LOINC", "2823-3"),
        ("*", "01", "LOINC", "14749-6")]
    assert {e.map_version for e in from_yaml.entries} == {"2026.12"}
