"""Map files: the concept maps kept in a folder, read into :class:`~.maps.MapEntry` values.

:func:`load_folder` reads every ``*.csv``, ``*.yaml`` and ``*.yml`` file under a
folder, sub-folders included, in path order (names starting with ``.`` or
``~$``, such as editor and Excel lock files, are skipped). Files are UTF-8,
with or without the byte-order mark Excel writes.

CSV: a header row, then one map per row; a line starting with ``#`` is a comment::

    # QSXRMYY's LIS codes to LOINC, and one region-wide sex code.
    facility_id,source_system,local_code,target_system,target_code,target_display,map_version
    QSXRMYY,lab-test,K,LOINC,2823-3,Potassium [Moles/volume] in Serum or Plasma,
    QSXRMYY,lab-test,GLU,,14749-6,,
    *,sex,X,GB/T 2261.1,9,,2026.12

Required columns: ``facility_id``, ``source_system``, ``local_code``,
``target_code``; optional: ``target_system``, ``target_display``,
``map_version``; in any order, and no others. ``*`` as ``facility_id`` makes
a region-wide map (any facility's own map of the code wins over it). Rows whose
cells are all empty are ignored. Keep each row on one line.

YAML: one map set per file, its defaults at the top, the maps in a list::

    version: "2026.12"          # optional: else the file's hash
    facility_id: QSXZYY         # default for every map below
    source_system: lab-test     # default for every map below
    target_system: LOINC        # optional default
    maps:
      - {local_code: K, target_code: 2823-3, target_display: "Potassium [Moles/volume]"}
      - local_code: 01
        target_code: 14749-6
        facility_id: "*"        # a map may override any default

Keys at the top: ``version``, ``facility_id``, ``source_system``,
``target_system``, ``maps``. Keys of a map: ``local_code``, ``target_code``
(required), ``target_system``, ``target_display``, ``facility_id``,
``source_system``. No others. Every value is read as the text written: ``01``
stays ``01``, ``2026.10`` stays ``2026.10``, ``yes`` stays ``yes``.

Common rules: ``source_system`` is a kind of :data:`~.maps.KINDS`; an empty
``target_system`` takes the kind's default (:data:`DEFAULT_TARGET_SYSTEMS`;
``drug`` has none); a target in a built-in table's system must be one of its
codes (its display is filled in when the file gives none); a LOINC target must
have the LOINC shape and check digit. The map version is the file's declared
one (YAML ``version``, CSV ``map_version`` cell), else the first 12 hex digits
of the SHA-256 of the file's bytes, so any edit to such a file gives its maps a
new version. A declared version must be changed by hand with every edit.

Problems never stop a load and are never silent: a bad row or map is left out
and reported with its file and line; a file that cannot be read at all
(not UTF-8, not YAML, an unknown column) gives no maps and one problem; the
same key twice keeps the first and reports the second. :func:`diff_loads`
tells a watcher what to publish, keeping the maps of a file that became
unreadable (a half-saved file does not withdraw its maps).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import yaml

from hutong.errors import HutongError
from streams.terminology.maps import (
    DIAGNOSIS,
    ETHNICITY,
    ID_DOCUMENT_TYPE,
    KINDS,
    LAB_TEST,
    MARITAL_STATUS,
    SEX,
    UNIT,
    MapEntry,
    MapKey,
)
from streams.terminology.shapes import is_loinc
from streams.terminology.tables import (
    BUILTIN_TABLES,
    CV02_01_101,
    GB3304,
    GBT2261_1,
    GBT2261_2,
    ICD10_CN,
    LOINC,
    UCUM,
)

__all__ = [
    "DEFAULT_TARGET_SYSTEMS",
    "FileMaps",
    "LoadedMaps",
    "MapChanges",
    "MapFileError",
    "MapProblem",
    "diff_entries",
    "diff_loads",
    "file_version",
    "load_folder",
    "read_map_file",
]

#: The target system a map of each kind has when its file leaves it empty.
DEFAULT_TARGET_SYSTEMS: Mapping[str, str] = {
    LAB_TEST: LOINC, UNIT: UCUM, DIAGNOSIS: ICD10_CN, SEX: GBT2261_1,
    MARITAL_STATUS: GBT2261_2, ETHNICITY: GB3304, ID_DOCUMENT_TYPE: CV02_01_101,
}
SUFFIXES = frozenset({".csv", ".yaml", ".yml"})
_REQUIRED = ("facility_id", "source_system", "local_code", "target_code")
_CSV_COLUMNS = frozenset({*_REQUIRED, "target_system", "target_display", "map_version"})
_YAML_TOP = frozenset({"version", "facility_id", "source_system", "target_system", "maps"})
_YAML_MAP = frozenset({"local_code", "target_code", "target_system", "target_display",
                       "facility_id", "source_system"})
_NULL_TAG = "tag:yaml.org,2002:null"


class MapFileError(HutongError):
    """A map folder that cannot be used: it is missing, or (on request) its files have problems."""

    def __init__(self, message: str, problems: Iterable[MapProblem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class MapProblem:
    """One thing wrong in a map file: where, and what (never a patient's data: maps hold none)."""

    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}" if self.line else \
            f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class FileMaps:
    """What one file gave: its version, its maps and its problems."""

    path: str
    version: str
    entries: tuple[MapEntry, ...]
    problems: tuple[MapProblem, ...]
    #: False when the file could not be read at all (encoding, syntax, columns).
    readable: bool = True
    #: The line each entry was read from, in the order of ``entries``.
    lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class LoadedMaps:
    """Every map of a folder (one per key) and every problem found."""

    entries: tuple[MapEntry, ...]
    problems: tuple[MapProblem, ...]
    files: Mapping[str, FileMaps] = field(default_factory=dict)

    def raise_for_problems(self) -> None:
        """Raise :class:`MapFileError` listing the problems, if there are any."""
        if self.problems:
            listed = "; ".join(str(p) for p in self.problems[:10])
            more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
            raise MapFileError(f"{len(self.problems)} problem(s) in map files: {listed}{more}",
                               self.problems)


def file_version(data: bytes) -> str:
    """The version of a file that declares none: 12 hex digits of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:12]


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _entry(cells: Mapping[str, str | None], version: str,
           updated_at: datetime) -> MapEntry | str:
    """The entry a row or map describes, or the reason it describes none."""
    missing = [name for name in _REQUIRED if not _text(cells.get(name))]
    if missing:
        return f"{', '.join(missing)} empty"
    kind = str(_text(cells["source_system"])).lower()
    if kind not in KINDS:
        return f"source_system {kind!r} is not one of {', '.join(sorted(KINDS))}"
    code = str(_text(cells["target_code"]))
    system = _text(cells.get("target_system")) or DEFAULT_TARGET_SYSTEMS.get(kind)
    if system is None:
        return f"target_system empty, and kind {kind!r} has no default"
    display = _text(cells.get("target_display"))
    table = BUILTIN_TABLES.get(kind)
    if table is not None and system == table.system:
        known = table.display(code)
        if known is None:
            return f"target_code {code!r} is not a {system} code"
        display = display or known
    if system.upper() in ("LOINC", "LN") and not is_loinc(code):
        return f"target_code {code!r} is not a LOINC code (shape or check digit)"
    return MapEntry(
        facility_id=str(_text(cells["facility_id"])), source_system=kind,
        local_code=str(_text(cells["local_code"])), target_system=system, target_code=code,
        target_display=display, map_version=_text(cells.get("map_version")) or version,
        updated_at=updated_at)


#: The entries a file gave so far, each with the line it was read from.
_Found = list[tuple[MapEntry, int]]


def _csv_lines(text: str) -> tuple[list[int], list[str]]:
    numbers: list[int] = []
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            numbers.append(number)
            lines.append(line)
    return numbers, lines


def _read_csv(text: str, path: str, version: str, updated_at: datetime,
              entries: _Found, problems: list[MapProblem]) -> bool:
    numbers, lines = _csv_lines(text)
    reader = csv.reader(iter(lines), strict=True)
    header: list[str] | None = None
    consumed = 0
    while True:
        line = numbers[consumed] if consumed < len(numbers) else None
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(MapProblem(path, line, f"not readable as CSV ({exc})"))
            consumed = reader.line_num
            if header is None:
                return False
            continue
        consumed = reader.line_num
        if header is None:
            header = [cell.strip().lower() for cell in row]
            unknown = sorted(set(header) - _CSV_COLUMNS)
            absent = [name for name in _REQUIRED if name not in header]
            doubled = sorted({name for name in header if header.count(name) > 1})
            for what, names in (("unknown column", unknown), ("missing column", absent),
                                ("repeated column", doubled)):
                if names:
                    problems.append(MapProblem(path, line, f"{what}(s): {', '.join(names)}"))
            if unknown or absent or doubled:
                return False
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(MapProblem(
                path, line, f"{len(row)} cells where the header has {len(header)}"))
            continue
        result = _entry(dict(zip(header, row, strict=True)), version, updated_at)
        if isinstance(result, str):
            problems.append(MapProblem(path, line, result))
        else:
            entries.append((result, line or 0))
    if header is None:
        problems.append(MapProblem(path, None, "no header row"))
        return False
    return True


def _scalar(node: yaml.Node) -> str | None:
    if not isinstance(node, yaml.ScalarNode):
        raise TypeError
    return None if node.tag == _NULL_TAG else str(node.value)


def _mapping(node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise TypeError
    return {str(key.value): value for key, value in node.value}


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _read_yaml(text: str, path: str, version: str, updated_at: datetime,
               entries: _Found, problems: list[MapProblem]) -> bool:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or type(exc).__name__
        problems.append(MapProblem(path, mark.line + 1 if mark is not None else None,
                                   f"not readable as YAML ({reason})"))
        return False
    if root is None:
        problems.append(MapProblem(path, None, "the file is empty"))
        return False
    try:
        top = _mapping(root)
    except TypeError:
        problems.append(MapProblem(path, _line(root), "the top level is not a mapping"))
        return False
    unknown = sorted(set(top) - _YAML_TOP)
    if unknown:
        problems.append(MapProblem(path, _line(root), f"unknown key(s): {', '.join(unknown)}"))
        return False
    try:
        defaults = {key: _scalar(node) for key, node in top.items() if key != "maps"}
    except TypeError:
        problems.append(MapProblem(path, _line(root), "a top-level default is not plain text"))
        return False
    maps = top.get("maps")
    if not isinstance(maps, yaml.SequenceNode):
        problems.append(MapProblem(path, _line(maps or root), "maps is missing or not a list"))
        return False
    declared = defaults.pop("version", None)
    for number, node in enumerate(maps.value, start=1):
        where = f"map {number}: "
        try:
            given = {key: _scalar(value) for key, value in _mapping(node).items()}
        except TypeError:
            problems.append(MapProblem(path, _line(node), where + "not a mapping of plain text"))
            continue
        unknown = sorted(set(given) - _YAML_MAP)
        if unknown:
            problems.append(MapProblem(path, _line(node),
                                       where + f"unknown key(s): {', '.join(unknown)}"))
            continue
        result = _entry({**defaults, **given}, _text(declared) or version, updated_at)
        if isinstance(result, str):
            problems.append(MapProblem(path, _line(node), where + result))
        else:
            entries.append((result, _line(node)))
    return True


def read_map_file(data: bytes, path: str, *, updated_at: datetime) -> FileMaps:
    """The maps of one file's bytes; ``path`` (its name in problems) picks CSV or YAML."""
    version = file_version(data)
    found: _Found = []
    problems: list[MapProblem] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(MapProblem(path, data.count(b"\n", 0, exc.start) + 1,
                                   "not UTF-8 text (save it as UTF-8, e.g. Excel's CSV UTF-8)"))
        return FileMaps(path, version, (), tuple(problems), readable=False)
    reader = _read_csv if path.lower().endswith(".csv") else _read_yaml
    readable = reader(text, path, version, updated_at, found, problems)
    return FileMaps(path, version, tuple(e for e, _ in found), tuple(problems), readable,
                    tuple(line for _, line in found))


def _map_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        parts = path.relative_to(folder).parts
        if path.suffix.lower() in SUFFIXES and path.is_file() and not any(
                part.startswith((".", "~$")) for part in parts):
            yield path


def load_folder(folder: Path, *, now: datetime | None = None) -> LoadedMaps:
    """Every map in the files under ``folder``; ``now`` stamps their ``updated_at``.

    Raises :class:`MapFileError` only when ``folder`` is not a folder; everything
    wrong inside it comes back in :attr:`LoadedMaps.problems`.
    """
    if not folder.is_dir():
        raise MapFileError(f"map folder {folder} does not exist or is not a folder")
    updated_at = now or datetime.now(UTC)
    files: dict[str, FileMaps] = {}
    problems: list[MapProblem] = []
    first: dict[MapKey, tuple[MapEntry, str]] = {}
    for path in _map_files(folder):
        name = path.relative_to(folder).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            unread = MapProblem(name, None, f"cannot be read ({exc.strerror})")
            files[name] = FileMaps(name, "", (), (unread,), readable=False)
            problems.append(unread)
            continue
        loaded = files[name] = read_map_file(data, name, updated_at=updated_at)
        problems.extend(loaded.problems)
        for entry, line in zip(loaded.entries, loaded.lines, strict=True):
            if entry.key in first:
                problems.append(MapProblem(name, line, (
                    f"{entry.source_system} code {entry.local_code!r} of facility "
                    f"{entry.facility_id!r} is mapped again; the map at {first[entry.key][1]} "
                    "is used")))
            else:
                first[entry.key] = (entry, f"{name}:{line}")
    return LoadedMaps(tuple(e for e, _ in first.values()), tuple(problems), files)


@dataclass(frozen=True, slots=True)
class MapChanges:
    """What differs between two loads, by key (``updated_at`` is not a difference)."""

    added: tuple[MapEntry, ...] = ()
    #: The new entries of keys whose mapping changed.
    changed: tuple[MapEntry, ...] = ()
    #: The old entries of keys no longer mapped.
    removed: tuple[MapEntry, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def to_publish(self, updated_at: datetime) -> list[MapEntry]:
        """The records for ``hutong.terminology.maps``: new and changed maps, then
        a ``deleted`` entry for each removed key."""
        tombstones = [replace(e, deleted=True, updated_at=updated_at) for e in self.removed]
        return [*self.added, *self.changed, *tombstones]


def diff_entries(before: Iterable[MapEntry], after: Iterable[MapEntry]) -> MapChanges:
    """The maps added, changed and removed going from ``before`` to ``after``."""
    old = {e.key: e for e in before if not e.deleted}
    new = {e.key: e for e in after if not e.deleted}
    return MapChanges(
        added=tuple(new[k] for k in sorted(new.keys() - old.keys())),
        changed=tuple(new[k] for k in sorted(new.keys() & old.keys())
                      if not new[k].same_mapping(old[k])),
        removed=tuple(old[k] for k in sorted(old.keys() - new.keys())),
    )


def diff_loads(before: LoadedMaps, after: LoadedMaps) -> MapChanges:
    """:func:`diff_entries` of two loads of one folder, except that the maps of a
    file ``after`` could not read at all are kept as they were."""
    kept = [entry for name, loaded in before.files.items()
            if name in after.files and not after.files[name].readable
            for entry in loaded.entries]
    current = {e.key: e for e in kept} | {e.key: e for e in after.entries}
    return diff_entries(before.entries, current.values())
