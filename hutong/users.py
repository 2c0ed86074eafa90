"""Who may use the API, and in which roles.

The users file (``users_file``, default ``<data_dir>/users.yaml``) lists people
and applications with their roles and the SHA-256 of their tokens::

    users:
      - name: dr.wang                       # shown in audit records
        roles: [clinician]
        tokens: [sha256:9f86d08...]          # `hutong users add` prints a token once
      - name: li.analyst
        roles: [analyst]                     # also the ClickHouse HTTP login (port 8123)
        tokens: [sha256:...]

Roles:

=============  =================================================================
``clinician``  reads patients' documents (健康档案调阅); every read is audited
``sensitive``  with ``clinician``: also documents of sensitive categories
               (infectious disease, mental health)
``analyst``    queries the warehouse (``/api/v1/sql``, port 8123); sees no documents
``admin``      runs the hub: terminology, EMPI decisions, alerts, users
=============  =================================================================

A token is presented as ``Authorization: Bearer <token>``; on the ClickHouse
HTTP interface as the password of the user's name. The hub's ``api_token``
setting, where set, is an admin and analyst token named ``api-token``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.facilities import hash_api_key, new_api_key
from hutong.errors import ConfigError
from hutong.yamlfile import load_model

__all__ = ["ROLES", "Principal", "Role", "User", "Users", "add_user", "new_token"]

Role = Literal["clinician", "sensitive", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("clinician", "sensitive", "analyst", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user's name and roles."""

    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


class User(BaseModel):
    """One entry of the users file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@-]+$")
    roles: list[Role] = Field(min_length=1)
    tokens: list[str] = Field(default_factory=list, description="sha256:<hex> of each token.")

    @field_validator("tokens")
    @classmethod
    def _hashed(cls, tokens: list[str]) -> list[str]:
        for token in tokens:
            if not (token.startswith("sha256:") and len(token) == 71):
                raise ValueError("tokens must be stored hashed, as sha256:<64 hex digits> "
                                 "(hutong users add prints one)")
        return tokens

    def principal(self) -> Principal:
        return Principal(self.name, frozenset(self.roles))


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[User] = Field(default_factory=list)


def new_token() -> str:
    """A fresh API token (shown once, stored hashed)."""
    return new_api_key()


class Users:
    """The users of one hub, looked up by token (compared by hash in constant time)."""

    def __init__(self, users: Iterable[User] = (), *, api_token: str | None = None) -> None:
        self._users = {user.name: user for user in users}
        self._api_token_hash = hash_api_key(api_token) if api_token else None

    @classmethod
    def load(cls, path: Path | None, *, api_token: str | None = None) -> Users:
        """Read the users file; None (no file) gives only the ``api_token`` user, if any."""
        if path is None:
            return cls(api_token=api_token)
        parsed = load_model(path, _UsersFile, "users file")
        names = [user.name for user in parsed.users]
        if len(set(names)) != len(names):
            raise ConfigError(f"users file {path}: a name appears twice")
        return cls(parsed.users, api_token=api_token)

    @property
    def configured(self) -> bool:
        """Whether anyone can authenticate (else the API answers this machine only)."""
        return bool(self._users) or self._api_token_hash is not None

    def authenticate(self, token: str) -> Principal | None:
        """The user holding ``token``, or None."""
        digest = hash_api_key(token)
        if self._api_token_hash is not None and hmac.compare_digest(digest,
                                                                     self._api_token_hash):
            return Principal("api-token", frozenset({"admin", "analyst"}))
        found: Principal | None = None
        for user in self._users.values():
            for stored in user.tokens:
                if hmac.compare_digest(stored, digest):
                    found = user.principal()
        return found

    def login(self, name: str, token: str) -> Principal | None:
        """``name`` with its ``token`` (a password-style login), or None."""
        principal = self.authenticate(token)
        return principal if principal is not None and principal.name == name else None

    def __len__(self) -> int:
        return len(self._users)


def add_user(path: Path, name: str, roles: list[str]) -> str:
    """Add ``name`` with ``roles`` (or a new token for an existing name) to the users file;
    return the token, which is stored only as its hash."""
    data = yaml.safe_load(path.read_text("utf-8")) if path.is_file() else None
    entries: list[dict[str, Any]] = list((data or {}).get("users", []))
    token = new_token()
    for entry in entries:
        if entry.get("name") == name:
            entry["roles"] = sorted(set(roles) | set(entry.get("roles", [])))
            entry["tokens"] = [*entry.get("tokens", []), hash_api_key(token)]
            break
    else:
        entries.append({"name": name, "roles": roles, "tokens": [hash_api_key(token)]})
    _UsersFile.model_validate({"users": entries})  # refuse to write what will not load
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"users": entries}, allow_unicode=True, sort_keys=False),
                    "utf-8")
    path.chmod(0o600)
    return token
