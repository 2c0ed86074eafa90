"""The critical-value rule book, built again when its lists change.

The lists (``<FACILITY>.yaml`` over the shipped default) are on the topic
``hutong.alerts.rule-files``: the hub's API process publishes its
``critical-values`` folder there, and the platform above's lists arrive there too
(federation, docs/federation.md), under ``upstream/<name>``. Every stream worker,
in whichever pod, follows the topic (:class:`~hutong.federation.rulefiles.RuleFileFeed`);
:class:`LiveRuleBook` answers like a :class:`~streams.alerts.loading.RuleBook` and,
when the lists changed (:meth:`LiveRuleBook.refresh`, cheap when they did not), builds
the book again and swaps it in one assignment, so an evaluation sees the old book or
the new one, never half of each.

A hub's own list wins over the one from above for the same facility. A list that
does not load (it never should: both publishers check first) is left out and
logged, and the facility keeps the default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from streams.alerts.loading import RuleBook, load_default, overlay_from_yaml
from streams.alerts.parsing import RuleFileError
from streams.alerts.rules import RuleSet

__all__ = ["LiveRuleBook", "book_of", "folder_lists", "folder_signature"]

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]
#: The lists in force: file name -> text.
Lists = Mapping[str, str]


def folder_signature(folder: Path | None) -> Signature:
    """What identifies the folder's rule files as they are now."""
    if folder is None or not folder.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                        for p in folder.iterdir()
                        if p.is_file() and not p.name.startswith(".")))


def folder_lists(folder: Path) -> dict[str, str]:
    """The ``*.yaml`` lists of ``folder``, by file name."""
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text("utf-8") for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix == ".yaml" and not p.name.startswith(".")}


def book_of(lists: Lists) -> RuleBook:
    """The rule book of ``lists`` over the default; a list that does not load is left out."""
    base = load_default()
    facilities: dict[str, RuleSet] = {}
    for name, text in sorted(lists.items()):
        facility = name.removesuffix(".yaml")
        try:
            facilities[facility] = overlay_from_yaml(base, text, facility=facility, file=name)
        except (RuleFileError, ValueError) as exc:
            log.error("critical-value list %s left out (the default applies): %s", name, exc)
    return RuleBook(base, facilities)


class LiveRuleBook:
    """A RuleBook that :meth:`refresh` builds again when ``source`` says something new."""

    def __init__(self, source: Callable[[], Lists]) -> None:
        self._source = source
        self._lists: dict[str, str] = dict(source())
        self.book: RuleBook = book_of(self._lists)

    @property
    def default(self) -> RuleSet:
        return self.book.default

    def for_facility(self, facility_id: str) -> RuleSet:
        return self.book.for_facility(facility_id)

    def refresh(self) -> bool:
        """Build the book again if the lists changed; whether it did."""
        try:
            lists = dict(self._source())
        except OSError as exc:
            log.error("critical-value lists not read again, the ones in force stay: %s", exc)
            return False
        if lists == self._lists:
            return False
        self._lists = lists
        self.book = book_of(lists)
        log.info("critical-value lists in force: %d facility list(s)", len(self.book.facilities))
        return True
