"""What the warehouse keeps of who a record is (pure, no I/O but the key file).

By default (``warehouse_identifiers: pseudonymised``) the analytics tables hold
no facility patient ids and no birth dates:

- every facility patient id (``source_patient_id`` and the merged, left and
  right ids of merges and reviews) becomes a keyed pseudonym,
  ``HMAC-SHA256(key, id)`` shortened to 128 bits (``ps_`` and 32 hex digits).
  The same id gives the same pseudonym in every table, so joins and distinct
  counts still work; without the key nobody can test a guessed id against it;
- the birth date is left out; the derived ``patient_age_band`` (age at the
  event, in five-year bands) and ``patient_region_code`` (the county-level
  division, GB/T 2260, of the 身份证号) are kept instead;
- a dead letter keeps its size, not its raw bytes (they name the patient; the
  ``hutong.dlq`` topic keeps them for a retry).

Patients' names, ID numbers, phones and addresses never reach the warehouse in
either mode (`sinks.warehouse.rows`), nor do practitioners' ID numbers (the
registry's own ``id_pseudonym`` does). Practitioners' staff ids are work ids,
not patient data: they are kept as they are. ``raw`` keeps ids, birth dates and
dead-letter bytes, for a deployment authorised to hold them.

The key is the hub's pseudonym key (`hutong.keys.pseudonym_key`). Every writer
of one warehouse must share it; changing it changes every pseudonym written from
then on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from hutong.errors import ConfigError
from hutong.keys import keyed_pseudonym
from sinks.warehouse.rows import Column, TableSpec

__all__ = ["PSEUDONYMISED_COLUMNS", "Pseudonyms", "protect"]

#: Columns holding a facility's patient id (or a value derived from one).
PSEUDONYMISED_COLUMNS = frozenset({"source_patient_id", "merged_source_patient_id",
                                   "left_source_patient_id", "right_source_patient_id",
                                   "link_id"})
#: Columns left empty when pseudonymised, with their empty value.
_WITHHELD: dict[str, Any] = {"patient_birth_date": None, "payload": b""}


class Pseudonyms:
    """Keyed pseudonyms of identifiers."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError("the pseudonym key must be at least 16 bytes long")
        self._key = key

    def of(self, value: str | None) -> str | None:
        """The pseudonym of ``value`` (None stays None)."""
        return None if value is None else keyed_pseudonym(self._key, value)


def _pseudonymised(column: Column, pseudonyms: Pseudonyms) -> Column:
    get = column.get
    return Column(column.name, lambda event: pseudonyms.of(get(event)))


def _withheld(column: Column, empty: Any) -> Column:
    return Column(column.name, lambda _event: empty)


def protect(tables: Mapping[str, TableSpec], pseudonyms: Pseudonyms) -> dict[str, TableSpec]:
    """``tables`` with identifiers pseudonymised and birth dates and raw bytes withheld."""
    protected: dict[str, TableSpec] = {}
    for key, spec in tables.items():
        columns: list[Column] = []
        for column in spec.columns:
            change: Callable[[Column], Column] | None = None
            if column.name in PSEUDONYMISED_COLUMNS:
                change = lambda c: _pseudonymised(c, pseudonyms)  # noqa: E731
            elif column.name in _WITHHELD:
                change = lambda c: _withheld(c, _WITHHELD[c.name])  # noqa: E731
            columns.append(change(column) if change else column)
        protected[key] = replace(spec, columns=tuple(columns))
    return protected
