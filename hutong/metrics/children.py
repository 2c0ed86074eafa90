"""The stream workers' metrics, exported by the hub process that started them (ADR 0007).

A hub process starts its stream workers with ``PROMETHEUS_MULTIPROC_DIR`` set to
``<data_dir>/metrics``: prometheus_client in a worker then keeps every value in
a memory-mapped file there, one per process and metric type. The hub's
:class:`ChildFamilies` collector reads those files at each scrape and merges
them with the hub's own families of the same names (the stage metrics), so one
``/metrics`` shows the whole process tree. Counts of a worker that died stay in
its files, so a counter never goes back when the hub restarts a worker; the
hub empties the folder when it starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = ["MULTIPROC_ENV", "ChildFamilies", "merge_families", "prepare_dir"]

log = logging.getLogger(__name__)

#: The variable prometheus_client reads at import, in the child.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_dir(path: Path) -> Path:
    """Create ``path`` and remove the files of an earlier run (the hub holds the data-dir
    lock, so no other process writes there)."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


def merge_families(*sources: Iterable[Metric]) -> list[Metric]:
    """Families of the same name merged into one (their samples joined, the first one's
    help text kept): the exposition format allows each name once."""
    merged: dict[str, Metric] = {}
    for source in sources:
        for family in source:
            held = merged.get(family.name)
            if held is None:
                copy = Metric(family.name, family.documentation, family.type, family.unit)
                copy.samples = list(family.samples)
                merged[family.name] = copy
            elif held.type == family.type:
                held.samples.extend(family.samples)
            else:
                log.warning("metric %s is a %s here and a %s in a child process; the child's "
                            "values are left out", family.name, held.type, family.type)
    return list(merged.values())


class ChildFamilies(Collector):
    """The families of ``own`` (a registry the hub does not export directly), merged with
    those its child processes wrote under ``path``, when one is set."""

    def __init__(self, own: CollectorRegistry, path: Path | None = None) -> None:
        self._own = own
        self.path = path

    def collect(self) -> Iterator[Metric]:
        own = list(self._own.collect())
        path = self.path
        if path is None or not path.is_dir() or not any(path.glob("*.db")):
            yield from own
            return
        reader = MultiProcessCollector(None, path=os.fspath(path))  # type: ignore[no-untyped-call]
        children = reader.collect()  # type: ignore[no-untyped-call]
        yield from merge_families(own, children)
