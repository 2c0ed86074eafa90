"""Critical-value rule files on a topic: what the workers apply, published from above too.

The critical-value lists (危急值目录) are files, ``<FACILITY>.yaml`` in the
``critical-values`` folder over the shipped default (:mod:`streams.alerts.loading`).
A hub's API process publishes its folder on ``hutong.alerts.rule-files`` (compacted,
key the file name; :class:`RuleFolderPublisher`, at start and when the folder changes):
a file that loads is published with its SHA-256, a file taken out is withdrawn (a
record with no content), a file that does not load is left out and logged. Every
stream worker, in whichever pod, builds its rule book from the topic
(:class:`RuleFileFeed`, :class:`streams.alerts.live.LiveRuleBook`).

A city sets the lists of its medical communities; the districts should run the
same. A district's :class:`RuleFilesDownlink` follows the city's topic and puts
each of the city's own lists on the district's topic under ``upstream/<name>``,
with ``origin`` the city's name, once it has checked that it loads here. The
district's own list for the same facility wins in the workers; where the two
differ, the conflict is reported (``hutong.federation.conflicts``, the metrics,
``GET /api/v1/federation``), and withdrawing the district's own lets the city's
apply at once. A withdrawal above withdraws the copy, never the district's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hutong.federation.downlink import Downlink
from hutong.topicfeed import TopicFeed
from producers.kafka import AsyncProducer, OutRecord
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from streams.alerts.live import folder_signature
from streams.alerts.loading import load_default, load_overlay
from streams.alerts.parsing import RuleFileError

__all__ = ["RULE_FILES_TOPIC", "RuleFileFeed", "RuleFilesDownlink", "RuleFolderPublisher",
           "publish_rule_files", "reconcile_file", "rule_files"]

log = logging.getLogger(__name__)

RULE_FILES_TOPIC = "hutong.alerts.rule-files"
#: The key prefix of lists from the platform above on this hub's topic.
_UPSTREAM = "upstream/"
#: A rule file's name: <FACILITY>.yaml, nothing that could leave the folder.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\.yaml")


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def rule_files(folder: Path) -> dict[str, bytes]:
    """The rule files of ``folder`` (``*.yaml``, not hidden), by name."""
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix == ".yaml" and not p.name.startswith(".")}


def _valid(name: str, content: bytes) -> bool:
    """Whether ``content`` loads as the rule file ``name`` over the default."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        return _loads(path)


def _loads(path: Path) -> bool:
    try:
        load_overlay(load_default(), path)
    except (RuleFileError, OSError) as exc:
        log.error("critical-value rule file %s is not published: %s", path, exc)
        return False
    return True


class RuleFileFeed(TopicFeed):
    """What this hub's rule-file topic holds: the latest record per file name."""

    topic = RULE_FILES_TOPIC
    what = "published rule files"

    def __init__(self, client_config: dict[str, Any], ids: Resolver = EMBEDDED) -> None:
        super().__init__(client_config, ids)
        #: The latest record of each key: a file name (this hub's), or upstream/<name>.
        self.records: dict[str, dict[str, Any]] = {}

    def apply(self, record: Mapping[str, Any]) -> bool:
        self.records[record_key(record)] = dict(record)
        return True

    def lists(self) -> dict[str, str]:
        """The lists in force: the platform above's, with this hub's own over them."""
        records = list(self.records.values())  # a copy: the feed thread may add meanwhile
        return {r["name"]: r["content"] for r in sorted(
                    records, key=lambda r: r.get("origin") is None)  # own ones last: they win
                if r.get("content") is not None}


def record_key(record: Mapping[str, Any]) -> str:
    """The topic key of a rule-file record: its name, or upstream/<name> from above."""
    return str(record["name"]) if record.get("origin") is None else f"{_UPSTREAM}{record['name']}"


async def publish_rule_files(producer: AsyncProducer, folder: Path, published: RuleFileFeed,
                             ids: Resolver = EMBEDDED) -> int:
    """Publish what changed in ``folder`` since the topic last said; how many records."""
    schema = ids.for_topic(RULE_FILES_TOPIC)
    now = datetime.now(UTC)
    files = rule_files(folder)
    out: list[dict[str, Any]] = []
    for name, content in files.items():
        held = published.records.get(name)
        if (held is None or held.get("sha256") != sha256(content)) and _loads(folder / name):
            out.append({"name": name, "content": content.decode("utf-8"),
                        "sha256": sha256(content), "published_at": now, "origin": None})
    for key, held in list(published.records.items()):
        if held.get("origin") is None and key not in files and held.get("content") is not None:
            out.append({"name": key, "content": None, "sha256": None, "published_at": now,
                        "origin": None})
    if out:
        await producer.send([OutRecord(RULE_FILES_TOPIC, record_key(r).encode(),
                                       wire.encode(schema, r)) for r in out])
        for record in out:
            published.apply(record)
    return len(out)


class RuleFolderPublisher:
    """Publishes the folder at start, then whenever it changes (looked at every ``poll_s``)."""

    def __init__(self, folder: Path, producer: AsyncProducer, client_config: dict[str, Any],
                 ids: Resolver = EMBEDDED, poll_s: float = 5.0) -> None:
        self.folder = folder
        self._producer = producer
        self._ids = ids
        self._poll_s = poll_s
        self.published = RuleFileFeed(client_config, ids)
        self._seen: tuple[Any, ...] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.published.start()
        if not await asyncio.to_thread(self.published.wait_ready, 30):
            log.warning("the published rule files (%s) were not read in 30 s; publishing "
                        "the folder whole", RULE_FILES_TOPIC)
        await self.publish()
        self._task = asyncio.create_task(self._watch(), name="rule-files")

    async def publish(self) -> int:
        """Publish the folder if it changed since the last look; how many records."""
        seen = folder_signature(self.folder)
        if seen == self._seen:
            return 0
        self._seen = seen
        written = await publish_rule_files(self._producer, self.folder, self.published,
                                           self._ids)
        if written:
            log.info("critical-value rule files: %d published from %s", written, self.folder)
        return written

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.publish()
            except Exception:  # the broker away: try again at the next look
                self._seen = None
                log.exception("critical-value rule files not published; trying again")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.published.stop()


Outcome = Literal["apply", "same", "conflict"]


def reconcile_file(upstream: bytes | None, local: bytes | None, marked: str | None) -> Outcome:
    """The upstream's file (None: withdrawn), this hub's (None: none), and the digest of
    what the upstream sent last (None: never): what to do."""
    ours = local is not None and (marked is None or sha256(local) != marked)
    if not ours:
        return "same" if upstream == local else "apply"
    return "same" if upstream is None or upstream == local else "conflict"


class RuleFilesDownlink(Downlink[RuleFileFeed]):
    """Follows the upstream's rule files onto this hub's topic (see the module)."""

    topic = RULE_FILES_TOPIC
    what = "upstream rule files"
    kind = "rule-file"

    def apply(self, record: Mapping[str, Any]) -> bool:
        name = str(record["name"])
        if record.get("origin") is not None or not _NAME.fullmatch(name):
            # the upstream's own lists only: what it got from further up, it passes on as
            # its own when it adopts it; and nothing that could not be a file name
            log.warning("rule file %r from %s passed over", name[:80], self.origin)
            return False
        self.local_ready()
        content = record.get("content")
        upstream = content if isinstance(content, str) else None
        held = self._local.records.get(f"{_UPSTREAM}{name}")
        copy = held.get("content") if held is not None else None
        own = self._local.records.get(name)
        ours = own.get("content") if own is not None else None
        if upstream is not None and not _valid(name, upstream.encode("utf-8")):
            self.count("conflict")
            self.report(name, local_target="none (the upstream's does not load here)",
                        upstream_target=f"sha256 {sha256(upstream.encode())[:12]}",
                        local_version=None, upstream_version=record.get("sha256"))
            return False
        if ours is not None and upstream is not None and ours != upstream:
            self.count("conflict")  # this hub's own wins in the workers; the copy is kept
            self.report(name, local_target=f"sha256 {sha256(ours.encode())[:12]}",
                        upstream_target=f"sha256 {sha256(upstream.encode())[:12]}",
                        local_version=None, upstream_version=record.get("sha256"))
        if copy == upstream:
            if ours is None or ours == upstream:
                self.count("same")
            return False
        if ours is None or ours == upstream:
            self.count("apply")
        mine = {"name": name, "content": upstream,
                "sha256": sha256(upstream.encode()) if upstream is not None else None,
                "published_at": datetime.now(UTC), "origin": self.origin}
        self.send(RULE_FILES_TOPIC, record_key(mine).encode(),
                  wire.encode(self._ids.for_topic(RULE_FILES_TOPIC), mine))
        self._local.apply(mine)
        log.info("critical-value list %s %s from %s", name,
                 "withdrawn" if upstream is None else "received", self.origin)
        return True
