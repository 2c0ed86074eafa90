"""Which facilities may send, from where, with what credentials, and how they write HL7.

The registry is a YAML file (``facilities_file``), read at start::

    facilities:
      - id: QSXRMYY                     # MSH-4.1 as the facility sends it
        name: 清水县人民医院
        mllp_sources: [10.20.0.0/24]    # plain MLLP allowed only from here
        tls_names: [qsxrmyy.his.example] # client-certificate CN / DNS names (default: the id)
        ack_mode: original              # auto (MSH-15/16 decide) or original (always AA/AE/AR)
        api_keys: [sha256:9f86d08...]   # HTTP ingest keys, stored hashed
        profile:                        # where this facility puts things
          id_card_types: [SFZH]
          name_component: 1

How a connection proves who it is:

* MLLP over TLS: the client certificate (verified against the configured CA)
  names the facility; every message on that connection must carry that
  facility in MSH-4.
* plain MLLP: MSH-4 names a registered facility whose ``mllp_sources`` holds
  the sender's address.
* HTTP: the API key names the facility.

An unknown or mismatched facility is refused: AR, an audit record, nothing
stored. With ``intake_open`` set, unregistered facilities may send plain MLLP
from anywhere (a development convenience, loudly logged); registered ones are
still held to their addresses and get their profiles.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hutong.errors import ConfigError, quoted
from hutong.yamlfile import load_model
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile

__all__ = [
    "Facility",
    "FacilityRegistry",
    "Peer",
    "Refusal",
    "hash_api_key",
    "new_api_key",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_KEY_PREFIX = "sha256:"


def hash_api_key(key: str) -> str:
    """The form an API key is stored in: ``sha256:<hex>``.

    Keys are 32 random bytes (:func:`new_api_key`), so a plain SHA-256 is enough:
    there is nothing to guess that a slow hash would protect.
    """
    return _KEY_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    """A fresh API key to hand to a facility (shown once, stored hashed)."""
    return "htk_" + secrets.token_urlsafe(32)


class ProfileSettings(BaseModel):
    """A facility's HL7 conventions, as written in the registry file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id_card_types: list[str] = Field(
        default_factory=lambda: sorted(DEFAULT_PROFILE.id_card_types),
        description="PID-3 identifier types (CX.5) that hold the 身份证号.")
    health_card_types: list[str] = Field(
        default_factory=lambda: sorted(DEFAULT_PROFILE.health_card_types),
        description="PID-3 identifier types that hold the 电子健康卡 number.")
    id_card_field: Literal["PID-3", "PID-19"] | None = Field(
        None, description="Where the 身份证号 is; unset: PID-3 by type, else PID-19.")
    name_component: Literal[1, 2] | None = Field(
        None, description="PID-5 component holding the full Chinese name; unset: guessed.")

    def to_profile(self) -> PatientProfile:
        return PatientProfile(
            id_card_types=frozenset(t.upper() for t in self.id_card_types),
            health_card_types=frozenset(t.upper() for t in self.health_card_types),
            id_card_field=self.id_card_field,
            name_component=self.name_component,
        )


class Facility(BaseModel):
    """One registered facility."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64, description="MSH-4.1 as the facility sends it.")
    name: str = ""
    mllp_sources: list[IPNetwork] = Field(
        default_factory=list, description="Addresses allowed to send plain MLLP.")
    tls_names: list[str] = Field(
        default_factory=list, description="Client-certificate names (CN or DNS SAN).")
    api_keys: list[str] = Field(default_factory=list, description="sha256:<hex> of each key.")
    ack_mode: Literal["auto", "original"] = Field(
        "auto", description="auto: MSH-15/16 choose original or enhanced mode; original: "
        "always one AA/AE/AR (for senders that fill MSH-15/16 but expect AA).")
    profile: ProfileSettings = Field(default_factory=lambda: ProfileSettings.model_validate({}))

    @field_validator("api_keys")
    @classmethod
    def _hashed(cls, keys: list[str]) -> list[str]:
        for key in keys:
            digest = key.removeprefix(_KEY_PREFIX)
            if not key.startswith(_KEY_PREFIX) or len(digest) != 64 or not all(
                    c in "0123456789abcdef" for c in digest):
                raise ValueError("api_keys must be stored hashed, as sha256:<64 hex digits> "
                                 "(hutong facility key makes one)")
        return keys

    @property
    def certificate_names(self) -> list[str]:
        return self.tls_names or [self.id]


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facilities: list[Facility] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of a connection, as far as the transport knows."""

    transport: str  # mllp | mllps | http | file
    address: str | None = None  # IP address, no port
    #: The facility the transport authenticated (TLS client certificate, API key, or the
    #: operator who dropped a file); None when only the message itself names one.
    facility_id: str | None = None
    #: How the transport authenticated, for the audit record: "certificate CN=...", ...
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message from ``peer`` claiming ``claimed`` is not accepted."""

    reason: str


class FacilityRegistry:
    """The registered facilities, looked up by id, certificate name or API key."""

    def __init__(self, facilities: Iterable[Facility] = (), *, open_intake: bool = False) -> None:
        self.open_intake = open_intake
        self._by_id: dict[str, Facility] = {}
        self._by_name: dict[str, Facility] = {}
        self._by_key: dict[str, Facility] = {}
        for facility in facilities:
            if facility.id in self._by_id:
                raise ConfigError(f"facility registry: facility {facility.id} listed twice")
            self._by_id[facility.id] = facility
            for name in facility.certificate_names:
                if self._by_name.setdefault(name.lower(), facility) is not facility:
                    raise ConfigError(f"facility registry: certificate name {name} is given "
                                      f"to two facilities")
            for key in facility.api_keys:
                if self._by_key.setdefault(key, facility) is not facility:
                    raise ConfigError("facility registry: one API key is given to two "
                                      f"facilities ({facility.id})")
        self._profiles = {f.id: f.profile.to_profile() for f in self._by_id.values()}

    @classmethod
    def load(cls, path: Path | None, *, open_intake: bool = False) -> FacilityRegistry:
        """Read the registry file; a missing ``path`` is an empty registry."""
        if path is None:
            return cls(open_intake=open_intake)
        parsed = load_model(path, _RegistryFile, "facility registry")
        return cls(parsed.facilities, open_intake=open_intake)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, facility_id: object) -> bool:
        return facility_id in self._by_id

    def get(self, facility_id: str) -> Facility | None:
        return self._by_id.get(facility_id)

    def facilities(self) -> tuple[Facility, ...]:
        """Every registered facility, in the order of the registry file."""
        return tuple(self._by_id.values())

    def ack_mode(self, facility_id: str | None) -> str:
        facility = self._by_id.get(facility_id) if facility_id else None
        return facility.ack_mode if facility is not None else "auto"

    def profile(self, facility_id: str) -> PatientProfile:
        return self._profiles.get(facility_id, DEFAULT_PROFILE)

    def for_certificate(self, names: Iterable[str]) -> Facility | None:
        """The facility a verified client certificate names (CN or DNS SAN), if any."""
        for name in names:
            if (facility := self._by_name.get(name.lower())) is not None:
                return facility
        return None

    def for_api_key(self, key: str) -> Facility | None:
        """The facility holding ``key``; compared by hash, in constant time."""
        digest = hash_api_key(key)
        found = None
        for stored, facility in self._by_key.items():
            if hmac.compare_digest(stored, digest):
                found = facility
        return found

    def authorize(self, claimed: str, peer: Peer) -> Refusal | None:
        """None when ``peer`` may send messages naming ``claimed`` in MSH-4, else why not.

        Reasons name the facility and the transport, never message content.
        """
        if peer.facility_id is not None:  # the transport already authenticated someone
            if claimed != peer.facility_id:
                return Refusal(f"MSH-4 names {quoted(claimed)} but the connection is authenticated "
                               f"as {peer.facility_id!r}")
            return None
        facility = self._by_id.get(claimed)
        if peer.transport == "file":  # put there by an operator: the file system is the check
            if facility is None and not self.open_intake:
                return Refusal(f"facility {quoted(claimed)} is not registered")
            return None
        if peer.transport == "mllps":
            return Refusal(f"{peer.credential or 'the client certificate'} names no registered "
                           "facility")
        if peer.transport != "mllp":
            return Refusal(f"{peer.transport} intake requires an authenticated facility")
        if facility is None:
            if self.open_intake:
                return None
            return Refusal(f"facility {quoted(claimed)} is not registered")
        if not facility.mllp_sources:
            if self.open_intake:
                return None
            return Refusal(f"facility {quoted(claimed)} may not send plain MLLP (no mllp_sources; "
                           "use MLLP over TLS)")
        if peer.address is None or not _address_in(peer.address, facility.mllp_sources):
            return Refusal(f"facility {quoted(claimed)} may not send plain MLLP from "
                           f"{peer.address or 'an unknown address'}")
        return None


    def may_connect(self, peer: Peer) -> bool:
        """Whether anything from ``peer`` may be kept before a message names its facility:
        an authenticated peer, a file, or a plain-MLLP address some facility sends from."""
        if self.open_intake or peer.facility_id is not None or peer.transport == "file":
            return True
        return peer.address is not None and any(
            _address_in(peer.address, f.mllp_sources) for f in self._by_id.values())


def _address_in(address: str, networks: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)
