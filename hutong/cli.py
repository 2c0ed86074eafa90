"""``hutong``: run the hub, feed it, query it."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from hutong.config import Settings, load_settings
from hutong.errors import HutongError
from hutong.signals import stop_event

if TYPE_CHECKING:
    from hutong.hubclient import HubClient

__all__ = ["app", "main"]

app = typer.Typer(
    name="hutong",
    help="hutong (互通): the data exchange hub of a regional health information platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file (also HUTONG_CONFIG).",
                 exists=False, dir_okay=False),
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    settings = load_settings(config, **overrides)
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


@app.command()
def up(config: ConfigOption = None) -> None:
    """Run the whole hub in the foreground; Ctrl-C or SIGTERM stops it."""
    from hutong.hub import Hub

    settings = _settings(config)

    async def run() -> None:
        stop = stop_event()
        hub = Hub(settings)
        await hub.start()
        for name, where in hub.describe().items():
            console.print(f"[green]✓[/] {name:9} {where}")
        console.print("hutong is up; Ctrl-C stops it.")
        signalled = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(hub.failed.wait())
        try:
            await asyncio.wait({signalled, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            signalled.cancel()
            failed.cancel()
            console.print("stopping …")
            await hub.stop()

        if hub.failed.is_set():
            raise HutongError("a component the hub needs has died; see the log above")

    asyncio.run(run())


@app.command()
def broker(config: ConfigOption = None) -> None:
    """Run only the embedded Kafka-compatible broker (Tansu) with the contract's topics."""
    from hutong.config import DEFAULT_PARTITIONS
    from hutong.stack.broker import EmbeddedBroker
    from hutong.stack.topics import ensure_topics

    settings = _settings(config)
    embedded = EmbeddedBroker(settings.data_dir, settings.kafka_port)

    async def run() -> None:
        stop = stop_event()
        try:
            await asyncio.to_thread(embedded.start)
            created = await asyncio.to_thread(
                ensure_topics, {"bootstrap.servers": embedded.bootstrap},
                # the processes that use it see an external cluster, and size their
                # tables so
                partitions=settings.kafka_partitions or DEFAULT_PARTITIONS)
            console.print(f"broker on {embedded.bootstrap}; {len(created)} topics created. "
                          "Ctrl-C stops it.")
            await stop.wait()
        finally:
            embedded.stop()

    asyncio.run(run())


@app.command()
def send(
    files: Annotated[list[Path], typer.Argument(help="HL7 v2 files or folders of them.",
                                                 exists=True)],
    to: Annotated[str, typer.Option("--to", help="mllp://HOST:PORT, or mllps://HOST:PORT for "
                                    "MLLP over TLS")] = "mllp://127.0.0.1:2575",
    ca: Annotated[Path | None, typer.Option("--ca", help="CA bundle that signs the hub's "
                                            "certificate (mllps; default: system store).",
                                            exists=True)] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="The facility's client "
                                              "certificate, PEM (mllps).", exists=True)] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Private key of --cert, PEM, if "
                                             "not in the same file.", exists=True)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the summary.")] = False,
) -> None:
    """Send HL7 v2 messages (files, folders, batch files) as a facility would; print each ACK.

    Exits 1 if any message was not accepted (anything but AA, CA or CA+AA).
    """
    from connectors.tls import client_context
    from hutong.sender import send_files

    tls = client_context(ca, cert, key) if to.startswith("mllps:") else None
    failed = asyncio.run(send_files(files, to, console, quiet=quiet, tls=tls))
    raise typer.Exit(1 if failed else 0)


ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why (no patient data).")]
OnlyFacility = Annotated[str, typer.Option("--facility", help="Only this facility.")]
Limit = Annotated[int, typer.Option("--limit", help="At most this many.")]
OutputFormat = Annotated[str, typer.Option("--format", "-f", help="pretty, csv or json.")]


facility_app = typer.Typer(help="The facility registry: list, add, update, retire; API keys.",
                           no_args_is_help=True)
app.add_typer(facility_app, name="facility")
_FACILITY_COLUMNS = ["id", "name", "uscc", "level", "kind", "community", "region_code",
                     "status", "version", "changed_by", "changed_at"]
ChangedBy = Annotated[str | None, typer.Option("--by", help="Your user id (recorded with the "
                                               "change; needed under a shared token).")]
Version = Annotated[int | None, typer.Option("--version", help="Change only if the facility "
                                             "is still at this version.")]


@facility_app.command("list")
def facility_list(
    status: Annotated[str, typer.Option("--status", help="active, retired or all.")]
    = "active",
    fmt: OutputFormat = "pretty",
    config: ConfigOption = None,
) -> None:
    """The registered facilities, from the running hub."""
    _listing(config, "/api/v1/facilities", _FACILITY_COLUMNS, fmt, status=status)


@facility_app.command("show")
def facility_show(facility_id: Annotated[str, typer.Argument(help="The facility id.")],
                  config: ConfigOption = None) -> None:
    """One facility: its registry fields, how it connects, its code warnings, its version."""
    import json

    from hutong.hubclient import HubClient

    shown = HubClient(_settings(config)).get(f"/api/v1/facilities/{facility_id}")
    console.print_json(json.dumps(shown, ensure_ascii=False))


def _facility_fields(**given: Any) -> dict[str, Any]:
    """The options given on the command line, as registry-file fields."""
    return {name: value for name, value in given.items() if value not in (None, [])}


def _registry_change(kind: str, method: str, path: str, fields: dict[str, Any],
                     by: str | None, reason: str | None, version: int | None,
                     config: Path | None) -> None:
    """POST or PATCH one change to a registry (``kind``: facility or practitioner)."""
    from hutong.hubclient import HubClient

    client = HubClient(_settings(config))
    body = {kind: fields, "by": by, "reason": reason, "version": version}
    shown = client.patch(path, body) if method == "PATCH" else client.post(path, body)
    console.print(f"{kind} {shown.get('id') or shown.get('practitioner_id')} is at version "
                  f"{shown['version']} ({shown['status']})")
    for warning in shown.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)


FacilityName = Annotated[str | None, typer.Option("--name", help="The institution's name.")]
Uscc = Annotated[str | None, typer.Option("--uscc", help="统一社会信用代码 (GB 32100).")]
OrgCode = Annotated[str | None, typer.Option("--org-code", help="Legacy 组织机构代码 "
                                             "(GB 11714).")]
Level = Annotated[str | None, typer.Option("--level", help="医院等级, e.g. 二级甲等, 未定级.")]
Kind = Annotated[str | None, typer.Option("--kind", help="e.g. 综合医院, 乡镇卫生院.")]
Community = Annotated[str | None, typer.Option("--community", help="The 医共体 it belongs to.")]
Region = Annotated[str | None, typer.Option("--region", help="GB/T 2260 division code.")]
Sources = Annotated[list[str] | None, typer.Option("--mllp-source", help="An address or "
                                                   "network allowed to send plain MLLP "
                                                   "(repeat; replaces the list).")]
TlsNames = Annotated[list[str] | None, typer.Option("--tls-name", help="A client-certificate "
                                                    "name (repeat; replaces the list).")]
KeyHashes = Annotated[list[str] | None, typer.Option("--api-key-hash", help="sha256:... of an "
                                                     "API key from `hutong facility key` "
                                                     "(repeat; replaces the list).")]


@facility_app.command("add")
def facility_add(
    facility_id: Annotated[str, typer.Argument(help="The new facility's id (its MSH-4).")],
    name: FacilityName = None, uscc: Uscc = None, org_code: OrgCode = None,
    level: Level = None, kind: Kind = None, community: Community = None,
    region: Region = None, mllp_source: Sources = None, tls_name: TlsNames = None,
    api_key_hash: KeyHashes = None, by: ChangedBy = None, reason: ReasonOption = None,
    config: ConfigOption = None,
) -> None:
    """Register a facility through the running hub; it may send from its next message."""
    fields = _facility_fields(id=facility_id, name=name, uscc=uscc, org_code=org_code,
                              level=level, kind=kind, community=community,
                              region_code=region, mllp_sources=mllp_source,
                              tls_names=tls_name, api_keys=api_key_hash)
    _registry_change("facility", "POST", "/api/v1/facilities", fields, by, reason, None, config)


@facility_app.command("update")
def facility_update(
    facility_id: Annotated[str, typer.Argument(help="The facility id.")],
    name: FacilityName = None, uscc: Uscc = None, org_code: OrgCode = None,
    level: Level = None, kind: Kind = None, community: Community = None,
    region: Region = None, mllp_source: Sources = None, tls_name: TlsNames = None,
    api_key_hash: KeyHashes = None,
    reactivate: Annotated[bool, typer.Option("--reactivate", help="Bring a retired facility "
                                             "back.")] = False,
    by: ChangedBy = None, reason: ReasonOption = None, version: Version = None,
    config: ConfigOption = None,
) -> None:
    """Change the fields given; the others stay as they are."""
    fields = _facility_fields(name=name, uscc=uscc, org_code=org_code, level=level, kind=kind,
                              community=community, region_code=region,
                              mllp_sources=mllp_source, tls_names=tls_name,
                              api_keys=api_key_hash, status="active" if reactivate else None)
    if not fields:
        raise typer.BadParameter("give at least one field to change")
    _registry_change("facility", "PATCH", f"/api/v1/facilities/{facility_id}", fields, by, reason,
                     version, config)


@facility_app.command("retire")
def facility_retire(
    facility_id: Annotated[str, typer.Argument(help="The facility id.")],
    by: ChangedBy = None, reason: ReasonOption = None, version: Version = None,
    config: ConfigOption = None,
) -> None:
    """Retire a facility: its messages are refused from now on; its record is kept."""
    from hutong.hubclient import HubClient

    shown = HubClient(_settings(config)).post(
        f"/api/v1/facilities/{facility_id}/retire",
        {"by": by, "reason": reason, "version": version})
    console.print(f"facility {shown['id']} is retired (version {shown['version']})")


@facility_app.command("key")
def facility_key() -> None:
    """Make a new API key for a facility: give the key to the facility, store the hash.

    The hash goes in the facility's ``api_keys`` list in the registry file, or to the
    running hub with ``hutong facility update ID --api-key-hash``; the key itself is
    shown once and kept nowhere by hutong.
    """
    from connectors.facilities import hash_api_key, new_api_key

    key = new_api_key()
    console.print(f"key (give to the facility, shown once): {key}", soft_wrap=True)
    console.print(f"hash (put under api_keys in facilities.yaml): {hash_api_key(key)}",
                  soft_wrap=True)


def _listing(config: Path | None, path: str, columns: list[str], fmt: str = "pretty",
             **params: object) -> None:
    """GET a list from the running hub and print the ``columns`` of each row."""
    from hutong.hubclient import HubClient
    from hutong.query import print_result

    if fmt not in {"pretty", "csv", "json"}:
        raise typer.BadParameter("choose pretty, csv or json", param_hint="--format")
    rows = HubClient(_settings(config)).get(path, **params)
    print_result(columns, [[row[c] for c in columns] for row in rows], fmt)


empi_app = typer.Typer(help="The resident master index (EMPI): review, merge, unmerge.",
                       no_args_is_help=True)
app.add_typer(empi_app, name="empi")
Reviewer = Annotated[str, typer.Option("--by", help="Your user id: recorded with every change.")]


@empi_app.command("review")
def empi_review(
    pair_id: Annotated[str | None, typer.Argument(help="A pair to decide; none lists them.")]
    = None,
    accept: Annotated[bool, typer.Option("--accept", help="The two records are one person: "
                                         "merge their EMPI ids.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="They are two people: keep them "
                                         "apart.")] = False,
    by: Annotated[str | None, typer.Option("--by", help="Your user id (to decide).")] = None,
    reason: ReasonOption = None,
    status: Annotated[str, typer.Option("--status", help="open, linked, rejected or all "
                                        "(to list).")] = "open",
    limit: Annotated[int, typer.Option("--limit", help="At most this many pairs.")] = 100,
    config: ConfigOption = None,
) -> None:
    """List the pairs that may be one person, or decide one: --accept or --reject, --by you."""
    from hutong.hubclient import HubClient

    if pair_id is None:
        _listing(config, "/api/v1/empi/reviews", [
            "pair_id", "score", "left_facility_id", "left_source_patient_id",
            "right_facility_id", "right_source_patient_id", "status", "created_at"],
            status=status, limit=limit)
        return
    client = HubClient(_settings(config))
    if accept == reject or not by:
        raise typer.BadParameter("to decide a pair give exactly one of --accept or --reject, "
                                 "and --by with your user id")
    answer = client.post(f"/api/v1/empi/reviews/{pair_id}",
                         {"decision": "accept" if accept else "reject", "reviewer": by,
                          "reason": reason})
    console.print(f"decision {answer['decision_id']} ({answer['action']}) sent to the index")


def _merge_command(action: str, survivor: str, loser: str, by: str, reason: str | None,
                   config: Path | None) -> None:
    from hutong.hubclient import HubClient

    answer = HubClient(_settings(config)).post(
        f"/api/v1/empi/{action}s", {"survivor_empi_id": survivor, "loser_empi_id": loser,
                                    "reviewer": by, "reason": reason})
    console.print(f"decision {answer['decision_id']} ({action}) sent to the index")


@empi_app.command("merge")
def empi_merge(survivor: Annotated[str, typer.Argument(help="The EMPI id that stays.")],
               loser: Annotated[str, typer.Argument(help="The EMPI id merged into it.")],
               by: Reviewer, reason: ReasonOption = None, config: ConfigOption = None) -> None:
    """Merge two EMPI ids that are one person; the history is kept for unmerge."""
    _merge_command("merge", survivor, loser, by, reason, config)


@empi_app.command("unmerge")
def empi_unmerge(survivor: Annotated[str, typer.Argument(help="The EMPI id merged into.")],
                 loser: Annotated[str, typer.Argument(help="The EMPI id to split off again.")],
                 by: Reviewer, reason: ReasonOption = None, config: ConfigOption = None) -> None:
    """Undo the last merge of LOSER into SURVIVOR: its records get their own id back."""
    _merge_command("unmerge", survivor, loser, by, reason, config)


@empi_app.command("links")
def empi_links(empi_id: Annotated[str, typer.Argument(help="An EMPI id.")],
               config: ConfigOption = None) -> None:
    """The facility records linked to an EMPI id now."""
    _listing(config, f"/api/v1/empi/patients/{empi_id}/links",
             ["facility_id", "source_patient_id", "action", "decided_by", "linked_at"])


practitioner_app = typer.Typer(help="The practitioner registry (medical staff): list, add, "
                               "update, retire; clinicians events named but nobody registered.",
                               no_args_is_help=True)
app.add_typer(practitioner_app, name="practitioner")
_PRACTITIONER_COLUMNS = ["practitioner_id", "name", "certificate_number", "department", "role",
                         "title", "id_pseudonym", "status", "version", "changed_by"]
PractitionerFacility = Annotated[str, typer.Argument(help="The facility id (registry).")]
StaffId = Annotated[str, typer.Argument(help="The facility's staff id (what its messages send "
                                        "as ORC-12, PV1-7, ...).")]
StaffName = Annotated[str | None, typer.Option("--name", help="The practitioner's name.")]
IdNumber = Annotated[str | None, typer.Option("--id-number", help="身份证号 (GB 11643); kept "
                                              "in the hub, shown only as its pseudonym. '-' "
                                              "asks for it (kept out of the shell history).")]


def _asked(id_number: str | None) -> str | None:
    """The ID number given, or asked for without echo when given as ``-``."""
    if id_number == "-":
        return str(typer.prompt("ID number (身份证号)", hide_input=True))
    return id_number
Certificate = Annotated[str | None, typer.Option("--certificate", help="执业证书编码.")]
Department = Annotated[str | None, typer.Option("--department", help="科室.")]
Role = Annotated[str | None, typer.Option("--role", help="医师, 护士, 药师, 技师 or 其他 (or "
                                          "doctor, nurse, pharmacist, technician, other).")]
Title = Annotated[str | None, typer.Option("--title", help="职称, e.g. 主治医师.")]



@practitioner_app.command("list")
def practitioner_list(
    facility: OnlyFacility = "",
    certificate: Annotated[str, typer.Option("--certificate", help="Only the holders of this "
                                             "certificate number.")] = "",
    status: Annotated[str, typer.Option("--status", help="active, retired or all.")]
    = "active",
    fmt: OutputFormat = "pretty",
    config: ConfigOption = None,
) -> None:
    """The registered practitioners, from the running hub (ID numbers as pseudonyms)."""
    _listing(config, "/api/v1/practitioners", _PRACTITIONER_COLUMNS, fmt, facility=facility,
             certificate=certificate, status=status)


@practitioner_app.command("add")
def practitioner_add(facility_id: PractitionerFacility, local_id: StaffId,
                     name: Annotated[str, typer.Option("--name", help="Their name.")],
                     id_number: IdNumber = None, certificate: Certificate = None,
                     department: Department = None, role: Role = None, title: Title = None,
                     by: ChangedBy = None, reason: ReasonOption = None,
                     config: ConfigOption = None) -> None:
    """Register a practitioner at a facility; events naming them link from then on."""
    fields = _facility_fields(facility_id=facility_id, local_id=local_id, name=name,
                              id_number=_asked(id_number), certificate_number=certificate,
                              department=department, role=role, title=title)
    _registry_change("practitioner", "POST", "/api/v1/practitioners", fields, by, reason,
                     None, config)


@practitioner_app.command("update")
def practitioner_update(facility_id: PractitionerFacility, local_id: StaffId,
                        name: StaffName = None, id_number: IdNumber = None,
                        certificate: Certificate = None, department: Department = None,
                        role: Role = None, title: Title = None,
                        reactivate: Annotated[bool, typer.Option(
                            "--reactivate", help="Bring a retired practitioner back.")] = False,
                        by: ChangedBy = None, reason: ReasonOption = None,
                        version: Version = None, config: ConfigOption = None) -> None:
    """Change what the registry says of a practitioner (only the options given)."""
    fields = _facility_fields(name=name, id_number=_asked(id_number),
                              certificate_number=certificate,
                              department=department, role=role, title=title,
                              status="active" if reactivate else None)
    if not fields:
        raise typer.BadParameter("say what to change (--name, --department, ...)")
    _registry_change("practitioner", "PATCH",
                     f"/api/v1/practitioners/{facility_id}/{local_id}", fields, by, reason,
                     version, config)


@practitioner_app.command("retire")
def practitioner_retire(facility_id: PractitionerFacility, local_id: StaffId,
                        by: ChangedBy = None, reason: ReasonOption = None,
                        version: Version = None, config: ConfigOption = None) -> None:
    """Retire a practitioner: events still link to them, marked retired."""
    from hutong.hubclient import HubClient

    shown = HubClient(_settings(config)).post(
        f"/api/v1/practitioners/{facility_id}/{local_id}/retire",
        {"by": by, "reason": reason, "version": version})
    console.print(f"practitioner {shown['practitioner_id']} is retired "
                  f"(version {shown['version']})")


@practitioner_app.command("unknown")
def practitioner_unknown(
    facility: OnlyFacility = "",
    include_registered: Annotated[bool, typer.Option("--all", help="Also those registered "
                                                     "since.")] = False,
    limit: Limit = 1000,
    fmt: OutputFormat = "pretty",
    config: ConfigOption = None,
) -> None:
    """Clinicians events named whom the registry does not know, most frequent first: who
    to register next (the events were kept, marked unknown)."""
    _listing(config, "/api/v1/practitioners/unknown", [
        "facility_id", "local_id", "name", "role", "event_type", "count", "first_seen",
        "last_seen", "registered"], fmt, facility=facility,
        include_registered=include_registered, limit=limit)


federation_app = typer.Typer(help="Federation with the platform above: events up, "
                             "dictionaries down (docs/federation.md).", no_args_is_help=True)
app.add_typer(federation_app, name="federation")


@federation_app.command("status")
def federation_status(config: ConfigOption = None) -> None:
    """What goes up and how, and what came down: code maps, critical-value lists and
    facilities applied, and conflicts with this hub's own (kept), newest last."""
    import json

    from hutong.hubclient import HubClient

    shown = HubClient(_settings(config)).get("/api/v1/federation")
    console.print_json(json.dumps(shown, ensure_ascii=False))


terminology_app = typer.Typer(help="Code maps and the codes no map covers (术语和字典管理).",
                              no_args_is_help=True)
app.add_typer(terminology_app, name="terminology")


@terminology_app.command("unmapped")
def terminology_unmapped(
    facility: OnlyFacility = "",
    include_mapped: Annotated[bool, typer.Option("--all", help="Also the codes a map covers "
                                                 "now.")] = False,
    limit: Limit = 1000,
    fmt: OutputFormat = "pretty",
    config: ConfigOption = None,
) -> None:
    """Local codes that came without a map, most frequent first: what to map next."""
    _listing(config, "/api/v1/terminology/unmapped", [
        "facility_id", "code_system", "local_code", "local_display", "count", "first_seen",
        "last_seen", "mapped_now"], fmt, facility=facility, include_mapped=include_mapped,
        limit=limit)


@terminology_app.command("maps")
def terminology_maps(
    facility: Annotated[str, typer.Option("--facility", help="Only this facility (or *).")]
    = "",
    kind: Annotated[str, typer.Option("--kind", help="lab-test, unit, diagnosis, drug, sex, "
                                      "...")] = "",
    limit: Limit = 1000,
    fmt: OutputFormat = "pretty",
    config: ConfigOption = None,
) -> None:
    """The code maps in force."""
    _listing(config, "/api/v1/terminology/maps", [
        "facility_id", "source_system", "local_code", "target_system", "target_code",
        "target_display", "map_version"], fmt, facility=facility, kind=kind, limit=limit)


@terminology_app.command("load")
def terminology_load(
    file: Annotated[Path, typer.Argument(help="A map file: .csv, .yaml or .yml.", exists=True,
                                         dir_okay=False)],
    config: ConfigOption = None,
) -> None:
    """Publish the maps of one file through the running hub (every problem refuses it)."""
    import httpx

    from hutong.hubclient import HubClient

    settings = _settings(config)
    kind = "application/yaml" if file.suffix in {".yaml", ".yml"} else "text/csv"
    client = HubClient(settings)
    try:
        answer = client.post_bytes("/api/v1/terminology/maps", file.read_bytes(), kind,
                                   name=file.name)
    except HutongError as exc:
        raise HutongError(f"{file}: {exc}") from None
    except httpx.HTTPError as exc:  # pragma: no cover - network trouble mid-request
        raise HutongError(f"{file}: {exc}") from exc
    console.print(f"{file}: {answer['maps']} maps (version {answer['version']}), "
                  f"{answer['published']} new or changed, published")


alerts_app = typer.Typer(help="Critical-value alerts (危急值): list and acknowledge.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    state: Annotated[str, typer.Option("--state", help="open, acknowledged or all.")] = "open",
    facility: OnlyFacility = "",
    limit: Limit = 100,
    fmt: OutputFormat = "pretty",
    config: ConfigOption = None,
) -> None:
    """Alerts newest first, with their clocks: open ones (raised or escalated) by default."""
    _listing(config, "/api/v1/alerts", [
        "alert_id", "state", "facility_id", "empi_id", "test_code", "value", "unit", "rule_id",
        "escalation_level", "ordering_provider_id", "raised_at", "acknowledged_at",
        "acknowledged_by", "alert_to_ack_s"], fmt, state=state, facility=facility, limit=limit)


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="The alert to acknowledge.")],
    by: Annotated[str, typer.Option("--by", help="Your user id.")],
    note: Annotated[str | None, typer.Option("--note", help="A note (no patient data).")]
    = None,
    config: ConfigOption = None,
) -> None:
    """Acknowledge a critical-value alert: its escalation stops, its turnaround is kept."""
    from hutong.hubclient import HubClient

    HubClient(_settings(config)).post(f"/api/v1/alerts/{alert_id}/ack",
                                      {"by": by, "channel": "cli", "note": note})
    console.print(f"acknowledgement of {alert_id} by {by} sent")


documents_app = typer.Typer(help="Shared documents (共享文档库): a patient's index, one document. "
                            "Needs a clinician's token; every read is audited.",
                            no_args_is_help=True)
app.add_typer(documents_app, name="documents")
TokenFileOption = Annotated[
    Path | None,
    typer.Option("--token-file", help="A file holding your API token (reading documents needs "
                 "the clinician role); default: the hub's api_token.", exists=True,
                 dir_okay=False)]
PurposeOption = Annotated[str, typer.Option(
    "--purpose", help="Purpose of use: treatment, emergency, referral, quality or "
    "research-deidentified (recorded in the access audit).")]
_INDEX_COLUMNS = ["document_id", "type_code", "type_name", "title", "effective_time",
                  "facility_id", "version_number", "replaced_by", "sensitive", "withdrawn"]


def _document_client(config: Path | None, token_file: Path | None) -> HubClient:
    from hutong.hubclient import HubClient

    token = token_file.read_text("utf-8").strip() if token_file is not None else None
    return HubClient(_settings(config), token=token)


@documents_app.command("list")
def documents_list(
    empi_id: Annotated[str, typer.Argument(help="The patient's EMPI id.")],
    type_code: Annotated[str | None, typer.Option("--type", help="Only this WS/T 500 type "
                                                  "(C00xx).")] = None,
    facility: Annotated[str | None, typer.Option("--facility", help="Only from this "
                                                 "facility.")] = None,
    since: Annotated[str | None, typer.Option("--from", help="Effective at or after (ISO).")]
    = None,
    until: Annotated[str | None, typer.Option("--to", help="Effective before (ISO).")] = None,
    all_versions: Annotated[bool, typer.Option("--all-versions", help="Also versions a newer "
                                               "one replaced.")] = False,
    withdrawn: Annotated[bool, typer.Option("--withdrawn", help="Also documents withdrawn "
                                            "(their events no longer support them).")] = False,
    limit: Limit = 100,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.")] = 0,
    purpose: PurposeOption = "treatment",
    fmt: OutputFormat = "pretty",
    token_file: TokenFileOption = None,
    config: ConfigOption = None,
) -> None:
    """A patient's documents, newest first: registry metadata, never content."""
    from urllib.parse import quote

    from hutong.query import print_result

    if fmt not in {"pretty", "csv", "json"}:
        raise typer.BadParameter("choose pretty, csv or json", param_hint="--format")
    params: dict[str, object] = {"type_code": type_code, "facility": facility,
                                 "include_replaced": all_versions,
                                 "include_withdrawn": withdrawn, "limit": limit,
                                 "offset": offset, "purpose": purpose}
    for name, text, option in (("from", since, "--from"), ("to", until, "--to")):
        moment = _moment(text, option)
        if moment is not None:
            params[name] = moment.isoformat()
    client = _document_client(config, token_file)
    answer = client.get(f"/api/v1/patients/{quote(empi_id, safe='')}/documents",
                        **{k: v for k, v in params.items() if v is not None})
    rows = [[row.get(c) for c in _INDEX_COLUMNS] for row in answer["documents"]]
    print_result(_INDEX_COLUMNS, rows, fmt)


@documents_app.command("show")
def documents_show(
    document_id: Annotated[str, typer.Argument(help="The document id (root^extension).")],
    cda: Annotated[bool, typer.Option("--cda", help="Only the CDA document, as stored, on "
                                      "standard output.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the CDA "
                                                "document to this file.", dir_okay=False)]
    = None,
    deidentified: Annotated[bool, typer.Option("--deidentified", help="Ask for it "
                                               "de-identified (how a clinician without the "
                                               "sensitive role reads a sensitive one).")]
    = False,
    purpose: PurposeOption = "treatment",
    token_file: TokenFileOption = None,
    config: ConfigOption = None,
) -> None:
    """One document: its registry metadata and CDA text, or (--cda, --output) the CDA."""
    import json
    import sys
    from urllib.parse import quote

    from sinks.docstore.model import CDA_MEDIA_TYPE

    client = _document_client(config, token_file)
    path = f"/api/v1/documents/{quote(document_id, safe='')}"
    params = {"deidentified": deidentified, "purpose": purpose}
    if cda or output is not None:
        content = client.get_bytes(path, CDA_MEDIA_TYPE, format="cda", **params)
        if output is None:
            sys.stdout.buffer.write(content)
            sys.stdout.flush()
        else:
            output.write_bytes(content)
            console.print(f"{len(content)} bytes written to {output}")
        return
    answer = client.get(path, format="json", **params)
    text = answer.pop("content")
    json.dump(answer, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n\n" + text + "\n")


users_app = typer.Typer(help="API users and their roles (clinician, sensitive, analyst, admin).",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user's name, as audit records show it.")],
    role: Annotated[list[str], typer.Option("--role", help="A role: clinician, sensitive, "
                                            "analyst or admin (repeat for more).")],
    config: ConfigOption = None,
) -> None:
    """Add a user (or a new token for one) to the users file; print the token once.

    The file keeps only the token's hash. A running hub reads the file when it starts.
    The addition (who ran it, the name and roles; never the token) is in the audit log.
    """
    import getpass

    from pydantic import ValidationError

    from hutong.audit import AuditLog
    from hutong.users import ROLES, add_user

    roles = sorted({r.strip() for given in role for r in given.split(",") if r.strip()})
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise typer.BadParameter(f"roles are {', '.join(ROLES)}", param_hint="--role")
    settings = _settings(config)
    path = settings.users_path or settings.data_dir / "users.yaml"
    try:
        token = add_user(path, name, roles)
    except ValidationError:
        raise typer.BadParameter("a name is letters, digits and . _ @ - (at most 128)",
                                 param_hint="NAME") from None
    AuditLog(settings.data_dir / "audit").record(
        "user.added", principal=f"os:{getpass.getuser()}", user=name, roles=roles,
        file=str(path))
    console.print(f"{name} ({', '.join(roles)}) is in {path}; the token below is shown once "
                  "and kept nowhere (restart the hub to let it in):")
    typer.echo(token)


def _moment(text: str | None, option: str) -> datetime | None:
    """An ISO date or time; without an offset it is read in the hub's zone (Asia/Shanghai)."""
    from producers.hl7v2.types import DEFAULT_TZ

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("an ISO date or time, e.g. 2026-12-04 or 2026-12-04T08:00",
                                 param_hint=option) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=DEFAULT_TZ)


@app.command()
def replay(
    facility: Annotated[str, typer.Option("--facility", help="The facility whose messages to "
                                          "process again.")],
    since: Annotated[str | None, typer.Option("--since", help="Received at or after (ISO; "
                                              "default: the oldest kept).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Received before (ISO; "
                                              "default: now).")] = None,
    config: ConfigOption = None,
) -> None:
    """Process a facility's messages again from the raw topics, e.g. after a code map was
    added: their events are translated with today's maps and replace their warehouse rows."""
    from connectors.facilities import FacilityRegistry
    from producers.replay import ReplayReport, Window
    from producers.replay import replay as run_replay
    from schemas.registry import resolver

    settings = _settings(config)
    window = Window(facility, _moment(since, "--since"), _moment(until, "--until"))
    registry = FacilityRegistry.load(settings.facility_registry_path,
                                     open_intake=settings.intake_open)

    def progress(report: ReplayReport) -> None:
        console.print(f"  … {report.read} raw messages read, {report.matched} from {facility}, "
                      f"{report.events} events sent")

    report = run_replay(settings.kafka_client_config(), window, profile_for=registry.profile,
                        ids=resolver(settings.schema_registry_url), progress=progress)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.by_type.items())) or "none"
    console.print(f"replayed {report.matched} messages of {facility} ({report.read} read) in "
                  f"{report.seconds:.1f} s: {report.events} events ({kinds}); "
                  f"{report.failed} failed again (they are dead letters already)")


@app.command("audit-verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check the hash chains of the audit log under <data_dir>/audit and of the document
    store's access audit; exit 2 if one is broken. Note the heads printed somewhere else:
    a chain cut short at its end is intact but ends before them."""
    from hutong.audit import AuditLog, verify
    from sinks.docstore.store import open_store, store_url

    settings = _settings(config)
    count = verify(settings.data_dir / "audit")
    console.print(f"audit log intact: {count} records, head "
                  f"{AuditLog(settings.data_dir / 'audit').head}")
    local = Path(store_url(None, settings.data_dir).removeprefix("sqlite:///"))
    if settings.docstore_url is None and not local.is_file():
        console.print("document store: none here (nothing to verify)")
        return
    store = open_store(settings.docstore_url, settings.data_dir)
    try:
        chained, older = store.verify_audit()
        head = store.audit_head()
    finally:
        store.close()
    before = f" (and {older} from before the chain)" if older else ""
    console.print(f"document access audit intact: {chained} records{before}, head {head}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One read-only statement.")],
    fmt: Annotated[str, typer.Option("--format", "-f",
                                     help="pretty, csv or json.")] = "pretty",
    config: ConfigOption = None,
) -> None:
    """Query the warehouse: through the running hub when there is one, else directly."""
    from hutong.query import print_result, run_query

    if fmt not in {"pretty", "csv", "json"}:
        raise typer.BadParameter("choose pretty, csv or json", param_hint="--format")
    settings = _settings(config)
    columns, rows = run_query(settings, query)
    print_result(columns, rows, fmt)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the hub running afterwards.")]
    = False,
    config: ConfigOption = None,
) -> None:
    """Start the hub, replay the bundled sample feeds, and show what happened."""
    from hutong.demo.run import run_demo

    settings = _settings(config)
    if "HUTONG_LOG_LEVEL" not in os.environ:  # the summary is the output; logs only for trouble
        logging.getLogger().setLevel(logging.WARNING)
    asyncio.run(run_demo(settings, console, keep=keep))


def main() -> None:
    """Entry point: HutongError becomes one clear line and exit code 2."""
    try:
        app()
    except HutongError as exc:
        console.print(f"[red]hutong:[/] {exc}", soft_wrap=True, highlight=False)
        raise SystemExit(2) from None
