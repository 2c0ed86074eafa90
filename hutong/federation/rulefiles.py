"""Critical-value rule files on a topic: published by every hub, applied from above.

The critical-value lists (危急值目录) are files, ``<FACILITY>.yaml`` in the
``critical-values`` folder over the shipped default (:mod:`streams.alerts.loading`).
A city sets the lists of its medical communities; the districts should run the same.

Every hub publishes its folder on ``hutong.alerts.rule-files`` (compacted, key the
file name; :func:`publish_rule_files`, at start and when the folder changes): a
file that loads is published with its SHA-256, a file taken out is withdrawn (a
record with no content), a file that does not load is left out and logged.

A district's :class:`RuleFilesDownlink` follows the city's topic and writes its
files into the district's folder (:func:`reconcile_file` decides):

* no such file here, or the one here is what the city sent last time (its
  digest is in ``.upstream/<name>.sha256``): written (or, withdrawn upstream,
  removed) and marked;
* this hub's own file (never sent from above, or changed here since) saying the
  same: nothing but the mark (later changes from above apply); saying something
  else: a **conflict**, this hub's kept and reported (``hutong.federation.conflicts``,
  the metrics, ``GET /api/v1/federation``).

The district's stream workers read the folder again within seconds
(:class:`streams.alerts.live.LiveRuleBook`); its own publisher then publishes the
file on its own topic, so the level below it gets it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
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
_MARKS = ".upstream"
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
        self.records: dict[str, dict[str, Any]] = {}

    def apply(self, record: Mapping[str, Any]) -> bool:
        self.records[record["name"]] = dict(record)
        return True


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
                        "sha256": sha256(content), "published_at": now})
    for name, held in published.records.items():
        if name not in files and held.get("content") is not None:
            out.append({"name": name, "content": None, "sha256": None, "published_at": now})
    if out:
        await producer.send([OutRecord(RULE_FILES_TOPIC, r["name"].encode(),
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


class RuleFilesDownlink(Downlink):
    """Follows the upstream's rule files into this hub's folder (see the module)."""

    topic = RULE_FILES_TOPIC
    what = "upstream rule files"
    kind = "rule-file"

    def __init__(self, upstream_config: dict[str, Any], local_config: dict[str, Any],
                 folder: Path, metrics: Any, *, origin: str, ids: Resolver = EMBEDDED) -> None:
        super().__init__(upstream_config, local_config, metrics, origin=origin, ids=ids)
        self.folder = folder

    def apply(self, record: Mapping[str, Any]) -> bool:
        name = str(record["name"])
        if not _NAME.fullmatch(name):
            log.warning("rule file name %r from %s refused", name[:80], self.origin)
            return False
        content = record.get("content")
        upstream = content.encode("utf-8") if isinstance(content, str) else None
        try:
            return self._apply(name, upstream, record.get("sha256"))
        except OSError as exc:  # a full disk, a permission: this file, not the whole feed
            log.error("rule file %s from %s not applied: %s", name, self.origin, exc.strerror)
            return False

    def _apply(self, name: str, upstream: bytes | None, version: str | None) -> bool:
        path, mark = self.folder / name, self.folder / _MARKS / f"{name}.sha256"
        local = path.read_bytes() if path.is_file() else None
        marked = mark.read_text("ascii").strip() if mark.is_file() else None
        outcome = reconcile_file(upstream, local, marked)
        if outcome == "apply" and upstream is not None and not _valid(name, upstream):
            outcome = "conflict"  # a list that does not load would stop the workers here
        self.count(outcome)
        if outcome == "conflict":
            self.report(name, local_target=f"sha256 {sha256(local)[:12]}" if local is not None
                        else "none (the upstream's does not load here)",
                        upstream_target=f"sha256 {sha256(upstream)[:12]}"
                        if upstream is not None else "withdrawn",
                        local_version=None, upstream_version=version)
            return False
        mark.parent.mkdir(parents=True, exist_ok=True)
        if outcome == "same":
            if upstream is not None and upstream == local:  # agreed: its changes apply now
                mark.write_text(sha256(upstream), "ascii")
            return False
        if upstream is None:
            path.unlink(missing_ok=True)
            mark.unlink(missing_ok=True)
        else:
            temporary = path.with_name(f".{name}.tmp")
            temporary.write_bytes(upstream)
            os.replace(temporary, path)  # the workers never read half a file
            mark.write_text(sha256(upstream), "ascii")
        log.info("critical-value rule file %s %s from %s", name,
                 "withdrawn" if upstream is None else "applied", self.origin)
        return True
