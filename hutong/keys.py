"""The hub's pseudonym key: the secret behind every keyed identifier it mints.

Warehouse pseudonyms (`sinks.warehouse.pseudonyms`) and EMPI ids and review pair
ids (`streams.empi.linker`) are keyed HMACs of facility record ids, so that
nobody without the key can recompute one from a guessed MRN. The key is the
``pseudonym_key`` setting or, unset, 32 random bytes generated once in
``<data_dir>/pseudonym.key`` (mode 0600). Processes that do not share a data
directory (pods of a cluster) must be given the same ``pseudonym_key``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from hutong.config import Settings

__all__ = ["keyed_pseudonym", "load_key", "pseudonym_key"]

_KEY_FILE = "pseudonym.key"


def load_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, else the one kept under ``data_dir`` (made on first use)."""
    if configured is not None:
        return configured.encode("utf-8")
    path = data_dir / _KEY_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text("ascii").strip().encode("ascii")


def pseudonym_key(settings: Settings) -> bytes:
    """The key the settings name, else the data directory's."""
    configured = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    return load_key(configured, settings.data_dir)


def keyed_pseudonym(key: bytes, value: str, purpose: str = "") -> str:
    """``ps_`` and the first 32 hex digits of HMAC-SHA256(key, value): the same value
    gives the same pseudonym wherever the key is shared; nobody without it can test a
    guess against one. A ``purpose`` derives a key of its own (HMAC of the key and the
    purpose), so pseudonyms made for one use (staff ID numbers, events sent up) never
    equal those of another (the warehouse's, made without one)."""
    if purpose:
        key = hmac.new(key, f"hutong-pseudonym:{purpose}".encode(), hashlib.sha256).digest()
    return "ps_" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
