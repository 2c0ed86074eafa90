"""The critical-value rule book, read again when its folder changes.

A stream worker reads the rule files once at start (:func:`~streams.alerting.rule_book`);
a facility's new list, an edited limit, or a list the platform above sent down
(federation, docs/federation.md) would wait for the next restart. :class:`LiveRuleBook`
answers like a :class:`~streams.alerts.loading.RuleBook` and looks at the folder
again every few seconds (names, sizes and modification times): when something
changed it loads the whole folder and swaps the book in one assignment, so an
evaluation sees the old book or the new one, never half of each. A folder that no
longer loads (a half-written file, a mistake) keeps the book in force and says so
in the log, once per change.
"""

from __future__ import annotations

import logging
from pathlib import Path

from streams.alerts.loading import RuleBook, load_rule_book
from streams.alerts.parsing import RuleFileError
from streams.alerts.rules import RuleSet

__all__ = ["LiveRuleBook", "folder_signature"]

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]


def folder_signature(folder: Path | None) -> Signature:
    """What identifies the folder's rule files as they are now."""
    if folder is None or not folder.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                        for p in folder.iterdir()
                        if p.is_file() and not p.name.startswith(".")))


class LiveRuleBook:
    """A RuleBook that :meth:`refresh` reloads when its folder changed."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._signature = folder_signature(folder)
        self.book: RuleBook = load_rule_book(folder if self._signature else None)
        self.version = 1

    @property
    def default(self) -> RuleSet:
        return self.book.default

    def for_facility(self, facility_id: str) -> RuleSet:
        return self.book.for_facility(facility_id)

    def refresh(self) -> bool:
        """Reload if the folder changed; whether the book in force changed."""
        try:
            signature = folder_signature(self.folder)
            if signature == self._signature:
                return False
            self._signature = signature
            book = load_rule_book(self.folder if signature else None)
        except (RuleFileError, OSError) as exc:
            log.error("critical-value rules in %s not reloaded, the ones in force stay: %s",
                      self.folder, exc)
            return False
        self.book = book
        self.version += 1
        log.info("critical-value rules reloaded from %s: %d facility list(s)", self.folder,
                 len(book.facilities))
        return True
