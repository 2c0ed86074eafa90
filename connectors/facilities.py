"""Which facilities may send, from where, with what credentials, and how they write HL7.

The registry is the topic ``hutong.registry.facilities``, seeded from a YAML file
(``facilities_file``) and changed through the API (:mod:`hutong.registry.facilities`)::

    facilities:
      - id: QSXRMYY                     # MSH-4.1 as the facility sends it
        name: 清水县人民医院
        uscc: 126205214385600027        # 统一社会信用代码 (GB 32100; warned, not refused,
                                        # when a pilot-era check character fails)
        org_code: 43856000-2            # legacy 组织机构代码 (GB 11714)
        level: 二级甲等                  # 医院等级
        kind: 综合医院
        community: QSX-YGT              # the 医共体 it belongs to
        region_code: "620521"           # GB/T 2260 division code
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

An unknown, retired or mismatched facility is refused: AR, an audit record,
nothing stored. The hub publishes the file's entries to the registry topic and
follows the topic, where the API's changes arrive too
(:mod:`hutong.registry.facilities`): :meth:`FacilityRegistry.put` applies one.
With ``intake_open`` set, unregistered facilities may send plain MLLP from
anywhere (a development convenience, loudly logged); registered ones are still
held to their addresses and get their profiles.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hutong.errors import ConfigError, quoted
from hutong.registry.codes import CodeCheck, check_org_code, check_region_code, check_uscc
from hutong.yamlfile import load_model
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile

__all__ = [
    "KINDS",
    "LEVELS",
    "Facility",
    "FacilityRegistry",
    "Peer",
    "Refusal",
    "hash_api_key",
    "new_api_key",
]

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: 医院等级 (hospital grades), and 未定级 for an institution without one.
LEVELS = ("三级特等", "三级甲等", "三级乙等", "三级丙等", "二级甲等", "二级乙等", "二级丙等",
          "一级甲等", "一级乙等", "一级丙等", "未定级")
#: Kinds of institution a regional platform connects (after WS 218's classes).
KINDS = ("综合医院", "中医医院", "中西医结合医院", "民族医院", "专科医院", "护理院",
         "妇幼保健院", "社区卫生服务中心", "社区卫生服务站", "乡镇卫生院", "街道卫生院",
         "村卫生室", "门诊部", "诊所", "急救中心", "疾病预防控制中心", "采供血机构",
         "体检中心", "区域卫生信息平台", "其他")
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

    id: str = Field(min_length=1, max_length=64, pattern=r"^[^\s/|^&~\\]+$",
                    description="MSH-4.1 as the facility sends it; the facility_id of its "
                                "events (no spaces, /, | or HL7 delimiters).")
    name: str = Field("", max_length=200)
    uscc: str | None = Field(None, description="统一社会信用代码 (GB 32100).")
    org_code: str | None = Field(None, description="Legacy 组织机构代码 (GB 11714).")
    level: str | None = Field(None, description=f"医院等级: {', '.join(LEVELS)}.")
    kind: str | None = Field(None, description=f"Kind of institution: {', '.join(KINDS)}.")
    community: str | None = Field(None, max_length=64,
                                  description="The 医共体 it belongs to (lead facility id or "
                                              "community code).")
    region_code: str | None = Field(None, description="GB/T 2260 division code, 6 digits.")
    status: Literal["active", "retired"] = Field(
        "active", description="retired: refused from then on, kept for history.")
    mllp_sources: list[IPNetwork] = Field(
        default_factory=list, max_length=64, description="Addresses allowed to send plain MLLP.")
    tls_names: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=32,
        description="Client-certificate names (CN or DNS SAN).")
    api_keys: list[str] = Field(default_factory=list, max_length=16,
                                description="sha256:<hex> of each key.")
    ack_mode: Literal["auto", "original"] = Field(
        "auto", description="auto: MSH-15/16 choose original or enhanced mode; original: "
        "always one AA/AE/AR (for senders that fill MSH-15/16 but expect AA).")
    profile: ProfileSettings = Field(default_factory=lambda: ProfileSettings.model_validate({}))

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, value: str | None) -> str | None:
        return _checked(value, check_uscc)

    @field_validator("org_code")
    @classmethod
    def _org_code(cls, value: str | None) -> str | None:
        return _checked(value, check_org_code)

    @field_validator("level")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        return _one_of(value, LEVELS, "level")

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        return _one_of(value, KINDS, "kind")

    @field_validator("region_code")
    @classmethod
    def _region_code(cls, value: str | None) -> str | None:
        return _checked(value, check_region_code)

    @property
    def code_warnings(self) -> tuple[str, ...]:
        """Findings on the codes that do not stop the registration (pilot-era USCCs)."""
        found = []
        if self.uscc and (warning := check_uscc(self.uscc).warning):
            found.append(f"uscc: {warning}")
        if self.org_code and (warning := check_org_code(self.org_code).warning):
            found.append(f"org_code: {warning}")
        if self.uscc and self.org_code and self.uscc[8:17] != self.org_code:
            found.append("org_code differs from the organisation code inside the uscc")
        return tuple(found)

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


def _one_of(value: str | None, choices: tuple[str, ...], what: str) -> str | None:
    if value is None or not value.strip():
        return None
    if value.strip() not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}")
    return value.strip()


def _checked(value: str | None, check: Callable[[str], CodeCheck]) -> str | None:
    """The normalised code, or ValueError with the reason it is not one."""
    if value is None or not value.strip():
        return None
    result = check(value)
    if result.problem is not None:
        raise ValueError(result.problem)
    return result.code


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
    #: The verified client certificate's names (MLLP over TLS): checked against the
    #: registry again for every message, so a name taken away stops an open connection.
    certificate_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message from ``peer`` claiming ``claimed`` is not accepted."""

    reason: str


@dataclass(frozen=True)
class _Index:
    """Every lookup of one state of the registry, replaced whole on a change, so that a
    reader on another thread never sees half of one."""

    every: dict[str, Facility] = field(default_factory=dict)  # active and retired, by id
    by_id: dict[str, Facility] = field(default_factory=dict)  # active only, from here on
    by_name: dict[str, Facility] = field(default_factory=dict)
    by_key: dict[str, Facility] = field(default_factory=dict)
    profiles: dict[str, PatientProfile] = field(default_factory=dict)
    #: Certificate names and API keys two active facilities claim: they open nothing.
    contested: frozenset[str] = frozenset()

    @classmethod
    def of(cls, facilities: Iterable[Facility], *, strict: bool = True) -> _Index:
        """The lookups of ``facilities``. ``strict`` (a file, an API change): a name or key
        claimed twice is a ConfigError. Otherwise (what the topic holds, which must always
        load): it authenticates neither claimant, whatever order they came in."""
        index = cls()
        contested: set[str] = set()
        for facility in facilities:
            if facility.id in index.every:
                raise ConfigError(f"facility registry: facility {facility.id} listed twice")
            index.every[facility.id] = facility
            if facility.status != "active":
                continue
            index.by_id[facility.id] = facility
            index.profiles[facility.id] = facility.profile.to_profile()
            claims = [(index.by_name, n.lower(), f"certificate name {n}")
                      for n in facility.certificate_names]
            claims += [(index.by_key, k, "one API key") for k in facility.api_keys]
            for lookup, claim, what in claims:
                holder = lookup.setdefault(claim, facility)
                if holder is facility:
                    continue
                if strict:
                    raise ConfigError(f"facility registry: {what} is given to two facilities "
                                      f"({holder.id} and {facility.id})")
                contested.add(claim)
        for claim in contested:
            index.by_name.pop(claim, None)
            index.by_key.pop(claim, None)
        return replace(index, contested=frozenset(contested))


class FacilityRegistry:
    """The registered facilities, looked up by id, certificate name or API key.

    Retired facilities are kept (:meth:`get`, :meth:`facilities`) but authorise
    nothing. :meth:`put` adds or replaces one while others read.
    """

    def __init__(self, facilities: Iterable[Facility] = (), *, open_intake: bool = False) -> None:
        self.open_intake = open_intake
        self._index = _Index.of(facilities)
        self._writing = threading.Lock()

    def put(self, facility: Facility) -> None:
        """Add ``facility`` or replace the one with its id, as the registry topic says: a
        certificate name or API key it shares with another active facility then opens
        neither (logged; :meth:`check` keeps such a change from being made)."""
        with self._writing:
            every = dict(self._index.every)
            every[facility.id] = facility
            self._index = _Index.of(every.values(), strict=False)
        if self._index.contested:
            log.error("facility registry: %d certificate name(s) or API key(s) are claimed "
                      "by two active facilities and open neither; see hutong facility list",
                      len(self._index.contested))

    def remove(self, facility_id: str) -> None:
        """Forget a facility entirely (not a retirement: no trace is kept)."""
        with self._writing:
            every = dict(self._index.every)
            every.pop(facility_id, None)
            self._index = _Index.of(every.values())

    def check(self, *facilities: Facility) -> str | None:
        """Why ``facilities``, added or changed together, cannot be put in the registry as
        it stands (a certificate name or API key two active facilities would hold), or
        None."""
        every = dict(self._index.every)
        every.update((facility.id, facility) for facility in facilities)
        try:
            _Index.of(every.values())
        except ConfigError as exc:
            return str(exc).removeprefix("facility registry: ")
        return None

    @classmethod
    def load(cls, path: Path | None, *, open_intake: bool = False) -> FacilityRegistry:
        """Read the registry file; a missing ``path`` is an empty registry."""
        if path is None:
            return cls(open_intake=open_intake)
        parsed = load_model(path, _RegistryFile, "facility registry")
        return cls(parsed.facilities, open_intake=open_intake)

    def __len__(self) -> int:
        return len(self._index.by_id)

    def __contains__(self, facility_id: object) -> bool:
        """Whether ``facility_id`` is an active facility."""
        return facility_id in self._index.by_id

    def get(self, facility_id: str) -> Facility | None:
        """The facility with this id, active or retired."""
        return self._index.every.get(facility_id)

    def facilities(self, *, retired: bool = False) -> tuple[Facility, ...]:
        """The active facilities (and the retired ones with ``retired``), in the order
        they were registered."""
        index = self._index
        return tuple((index.every if retired else index.by_id).values())

    def ack_mode(self, facility_id: str | None) -> str:
        facility = self._index.by_id.get(facility_id) if facility_id else None
        return facility.ack_mode if facility is not None else "auto"

    def profile(self, facility_id: str) -> PatientProfile:
        return self._index.profiles.get(facility_id, DEFAULT_PROFILE)

    def for_certificate(self, names: Iterable[str]) -> Facility | None:
        """The active facility a verified client certificate names (CN or DNS SAN), if any."""
        by_name = self._index.by_name
        for name in names:
            if (facility := by_name.get(name.lower())) is not None:
                return facility
        return None

    def for_api_key(self, key: str) -> Facility | None:
        """The active facility holding ``key``; compared by hash, in constant time."""
        digest = hash_api_key(key)
        found = None
        for stored, facility in self._index.by_key.items():
            if hmac.compare_digest(stored, digest):
                found = facility
        return found

    def authorize(self, claimed: str, peer: Peer) -> Refusal | None:
        """None when ``peer`` may send messages naming ``claimed`` in MSH-4, else why not.

        Reasons name the facility and the transport, never message content.
        """
        index = self._index
        if peer.facility_id is not None:  # the transport already authenticated someone
            if claimed != peer.facility_id:
                return Refusal(f"MSH-4 names {quoted(claimed)} but the connection is authenticated "
                               f"as {peer.facility_id!r}")
            # ... when it opened: the facility may have been retired or lost that name since
            facility = index.by_id.get(claimed)
            if facility is None and claimed in index.every:
                return Refusal(f"facility {quoted(claimed)} is retired")
            if facility is None:  # a folder or a retry of an unregistered facility
                return None if self.open_intake else Refusal(
                    f"facility {quoted(claimed)} is not registered")
            if peer.certificate_names and not any(
                    index.by_name.get(name.lower()) is facility
                    for name in peer.certificate_names):
                return Refusal(f"the client certificate no longer names facility {quoted(claimed)}")
            return None
        facility = index.by_id.get(claimed)
        if facility is None and claimed in index.every:
            return Refusal(f"facility {quoted(claimed)} is retired")
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
            _address_in(peer.address, f.mllp_sources) for f in self._index.by_id.values())


def _address_in(address: str, networks: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)
