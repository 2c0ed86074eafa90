"""Settings of every hutong process, read in this one place.

Sources, strongest first: keyword arguments (the CLI), ``HUTONG_*``
environment variables, the YAML file named by ``HUTONG_CONFIG`` (or
``--config``), then the defaults below. An unknown key in the YAML file or an
unknown ``HUTONG_*`` variable is an error: a typo must not silently fall back to
a default.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from hutong.components import COMPONENTS, Plan, partial_set_problem, plan
from hutong.errors import ConfigError
from hutong.yamlfile import validation_problems

__all__ = ["DEFAULT_PARTITIONS", "ENV_PREFIX", "URL_FIELDS", "Settings", "load_settings",
           "mask_url"]

ENV_PREFIX = "HUTONG_"
#: Partitions of the topics hutong creates on an external cluster, unless set.
DEFAULT_PARTITIONS = 3
#: Variables with the prefix that are not settings themselves (HUTONG_TEST_* steer the tests).
_META_VARIABLES = frozenset({"HUTONG_CONFIG"})
_META_PREFIX = "HUTONG_TEST_"


class Settings(BaseSettings):
    """One hub's settings; frozen once read."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Field(Path("var"), description="Embedded state: warehouse, logs, lock.")
    log_level: str = Field("INFO", description="Python logging level of hub processes.")
    components: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(COMPONENTS),
        description="The parts of the hub this process runs (comma-separated): connectors, "
        "streams, sinks, api. A partial set needs kafka_bootstrap, and with sinks or api also "
        "clickhouse_url and docstore_url (hutong.components).")

    kafka_bootstrap: str | None = Field(
        None, description="An external Kafka cluster; unset runs the embedded Tansu broker."
    )
    kafka_port: int = Field(9092, description="Port of the embedded broker.")
    kafka_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka settings (SASL/SSL) for every client; unknown keys fail.",
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password of every Kafka client (sasl.password), kept out of "
        "kafka_config so that the rest of it need not be secret.")
    kafka_partitions: int | None = Field(
        None, ge=1, description="Partitions of topics hutong creates; unset: one per stream "
        f"worker on the embedded broker, {DEFAULT_PARTITIONS} on an external cluster.")
    kafka_replication: int = Field(1, ge=1, description="Replication factor of created topics.")

    schema_registry_url: str | None = Field(
        None, description="A Confluent-compatible registry; unset serves the built-in catalog."
    )
    clickhouse_url: str | None = Field(
        None, description="A ClickHouse server (http[s]://user:pass@host:8123); unset uses chDB."
    )

    mllp_host: str = Field("0.0.0.0", description="Address the MLLP connector binds.")  # noqa: S104
    mllp_port: int = Field(2575, description="MLLP port.")
    mllp_max_frame_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest accepted MLLP frame; larger is NAKed."
    )
    mllp_idle_timeout_s: float = Field(300.0, gt=0, description="Close silent connections.")
    mllp_frame_timeout_s: float = Field(
        60.0, gt=0, description="A frame begun must end within this; else AR, record, close.")

    mllp_max_connections: int = Field(
        1000, ge=1, description="Open MLLP connections at most; more are closed at once.")
    mllps_port: int | None = Field(
        None, description="MLLP over TLS port (e.g. 2576); unset: no TLS listener.")
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain the hub presents (MLLP over TLS).")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle that signs facility client certificates.")

    facilities_file: Path | None = Field(
        None, description="Facility registry (YAML): ids, allowed addresses, certificate "
        "names, hashed API keys, HL7 profiles. Default: <data_dir>/facilities.yaml if present.")
    practitioners_file: Path | None = Field(
        None, description="Practitioner registry (YAML, or CSV with a header row): facility, "
        "staff id, name, ID number, practising-certificate number, department, role, title. "
        "Default: <data_dir>/practitioners.yaml or .csv if present.")
    federation_file: Path | None = Field(
        None, description="Federation with the platform above (docs/federation.md): what "
        "goes up, how, de-identified by which rules; where dictionaries come down from. "
        "Default: <data_dir>/federation.yaml if present; none: no federation.")
    intake_open: bool = Field(
        False, description="Accept plain MLLP from any facility (development only); "
        "registered facilities are still held to their addresses.")
    receipt_retention_days: float = Field(
        30.0, gt=0, description="How long a control id is remembered to recognise resends.")

    batch_dir: Path | None = Field(
        None, description="Watched folder for HL7 batch files (inbox/, done/, failed/, "
        "reports/). Default: <data_dir>/batch.")
    batch_poll_s: float = Field(2.0, gt=0, description="How often the batch inbox is read.")

    http_host: str = Field("0.0.0.0", description="Address the HTTP API binds.")  # noqa: S104
    http_port: int = Field(8080, description="HTTP API port: /healthz, /metrics, /api/v1.")
    http_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest body the ingest API takes; larger is 413.")
    api_token: SecretStr | None = Field(
        None, description="Bearer token required by /api/v1/sql when set."
    )
    http_tls: bool = Field(
        False, description="Serve the HTTP API and the ClickHouse HTTP interface over TLS "
        "(HTTPS) with tls_cert_file and tls_key_file: TLS 1.2 at least, forward-secret "
        "AEAD ciphers (connectors.tls).")
    api_ca_file: Path | None = Field(
        None, description="PEM CA bundle the hutong CLI trusts when it talks to the hub's "
        "HTTPS API (http_tls); unset: the system store.")
    facility_rate_limit: float = Field(
        2000.0, ge=0, description="Messages per second one facility may send over MLLP "
        "(each message) and HTTP ingest (each request), after a burst of "
        "facility_rate_burst; more are answered AR / 429 and counted. 0: no limit.")
    facility_rate_burst: int = Field(
        5000, ge=1, description="Messages a facility may send at once before "
        "facility_rate_limit applies.")

    streams_workers: int = Field(1, ge=0, description="Faust stream worker processes.")

    terminology_dir: Path | None = Field(
        None, description="Folder of code map files (CSV, YAML), published as they change. "
        "Default: <data_dir>/terminology.")
    terminology_poll_s: float = Field(5.0, gt=0, description="How often that folder is read.")
    monitor_cache_s: float = Field(
        15.0, ge=0, description="How long the exchange monitor's answers are shared between "
        "callers (each reads a day of every event table; the console polls every 5 s).")

    critical_values_dir: Path | None = Field(
        None, description="Folder of facility critical-value lists (<FACILITY>.yaml) over the "
        "shipped default. Default: <data_dir>/critical-values.")
    critical_value_window_minutes: float = Field(
        60.0, gt=0, description="A patient's repeat of one critical value within this many "
        "minutes raises no second alert.")
    alert_webhook_urls: list[str] = Field(
        default_factory=list, description="Critical-value alerts are POSTed (JSON) to these "
        "URLs, each state once, retried until taken.")
    alert_webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for the X-Hutong-Signature header of webhooks.")

    empi_link_threshold: float = Field(
        0.995, gt=0, lt=1, description="EMPI: link two records at this match probability "
        "or above.")
    empi_review_threshold: float = Field(
        0.90, gt=0, lt=1, description="EMPI: from this probability up to the link threshold, "
        "a new id and the pair to review.")
    empi_train_from: int = Field(
        1000, ge=0, description="EMPI: estimate m and u from the index (EM) once it holds this "
        "many records, and again each time it doubles; 0 keeps the built-in model.")
    empi_model: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="EMPI: m and u set by hand, over the estimates: "
        '{"name": {"exact": {"m": 0.9, "u": 0.0005}}}.')
    empi_trust: dict[str, int] = Field(
        default_factory=dict, description="EMPI golden record: how far each facility's "
        "demographics are trusted (higher wins; others 0).")
    sink_batch_size: int = Field(1000, ge=1, description="Events per warehouse insert.")
    sink_batch_wait_s: float = Field(
        0.2, gt=0, le=30, description="A sink writes what it has after waiting this long "
        "for a full batch.")
    clickhouse_cluster: str | None = Field(
        None, description="Run warehouse migrations ON CLUSTER this cluster, with replicated "
        "tables (a ClickHouse server cluster only).")
    clickhouse_http_port: int | None = Field(
        8123, description="ClickHouse HTTP interface of the embedded warehouse, for analysts "
        "(read-only, analyst role); empty or null: none. Not served with HUTONG_CLICKHOUSE_URL.")
    warehouse_identifiers: str = Field(
        "pseudonymised", description="What the warehouse holds of who a record is: "
        "'pseudonymised' (keyed HMAC pseudonyms, age band and region code) or 'raw' "
        "(source patient ids and birth dates, for an authorised deployment).")
    pseudonym_key: SecretStr | None = Field(
        None, description="HMAC key of warehouse pseudonyms; unset: a key generated once and "
        "kept in <data_dir>/pseudonym.key.")
    docstore_url: str | None = Field(
        None, description="Document store: a SQLAlchemy URL (postgresql+psycopg://...); "
        "unset: SQLite at <data_dir>/documents.sqlite.")
    users_file: Path | None = Field(
        None, description="API users (YAML): names, roles, hashed tokens. Default: "
        "<data_dir>/users.yaml if present.")
    access_audit_retention_days: int = Field(
        190, ge=183, description="Document access audit records are kept this many days "
        "(at least six months).")

    @field_serializer("kafka_bootstrap", "schema_registry_url", "clickhouse_url", "docstore_url",
                      "alert_webhook_urls", when_used="json")
    def _masked_url(self, value: str | list[str] | None) -> str | list[str] | None:
        """A JSON dump shows URLs without their passwords, as SecretStr hides secrets
        (`hutong.hub.child_environment` passes the values themselves)."""
        if isinstance(value, list):
            return [mask_url(v) for v in value]
        return mask_url(value) if value is not None else None

    @field_validator("clickhouse_http_port", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        """``HUTONG_CLICKHOUSE_HTTP_PORT=`` (empty) turns the interface off."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("components", mode="before")
    @classmethod
    def _component_list(cls, value: object) -> object:
        """``connectors,api`` or a JSON list (how child processes get it) or a YAML list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("components")
    @classmethod
    def _known_components(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown component(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(COMPONENTS)}")
        if not value:
            raise ValueError(f"name at least one of {', '.join(COMPONENTS)}")
        return [c for c in COMPONENTS if c in value]  # one order, no repeats

    @model_validator(mode="after")
    def _partial_set_is_external(self) -> Settings:
        problem = partial_set_problem(self.components, kafka_bootstrap=self.kafka_bootstrap,
                                      clickhouse_url=self.clickhouse_url,
                                      docstore_url=self.docstore_url)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _one_sasl_password(self) -> Settings:
        if self.kafka_sasl_password is not None and "sasl.password" in self.kafka_config:
            raise ValueError("the SASL password is set twice: in kafka_sasl_password and in "
                             "kafka_config; keep it in kafka_sasl_password")
        return self

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("warehouse_identifiers")
    @classmethod
    def _known_identifier_mode(cls, value: str) -> str:
        if value not in {"pseudonymised", "raw"}:
            raise ValueError("must be 'pseudonymised' or 'raw'")
        return value

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> Settings:
        if self.empi_review_threshold > self.empi_link_threshold:
            raise ValueError("empi_review_threshold must not exceed empi_link_threshold")
        return self

    @field_validator("empi_model")
    @classmethod
    def _known_comparisons(cls, value: dict[str, dict[str, dict[str, float]]]
                           ) -> dict[str, dict[str, dict[str, float]]]:
        """A misspelt comparison or level must not be ignored."""
        from streams.empi.model import DEFAULT_MODEL

        DEFAULT_MODEL.with_overrides(value)
        return value

    @field_validator("kafka_config")
    @classmethod
    def _known_to_librdkafka(cls, value: dict[str, str]) -> dict[str, str]:
        """librdkafka itself says whether a property exists; a typo must not be ignored."""
        from confluent_kafka import KafkaException, Producer

        for name, setting in value.items():
            try:
                Producer({"bootstrap.servers": "127.0.0.1:1", name: setting})
            except KafkaException as exc:
                if "No such configuration property" in exc.args[0].str():
                    raise ValueError(f"librdkafka has no setting {name!r}") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = os.environ.get("HUTONG_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _http_tls_complete(self) -> Settings:
        if self.http_tls and not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("http_tls needs tls_cert_file and tls_key_file")
        return self

    @model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        if self.mllps_port is not None and not (self.tls_cert_file and self.tls_key_file
                                                and self.tls_client_ca_file):
            raise ValueError("mllps_port needs tls_cert_file, tls_key_file and "
                             "tls_client_ca_file (facilities are identified by their "
                             "client certificates)")
        return self

    def _file_in_use(self, setting: Path | None, name: str) -> Path | None:
        """``setting`` when set, else ``<data_dir>/<name>`` if that file exists."""
        if setting is not None:
            return setting
        default = self.data_dir / name
        return default if default.is_file() else None

    @property
    def facility_registry_path(self) -> Path | None:
        """The registry file in use: the setting, else ``<data_dir>/facilities.yaml`` if any."""
        return self._file_in_use(self.facilities_file, "facilities.yaml")

    @property
    def practitioner_registry_path(self) -> Path | None:
        """The practitioner file in use: the setting, else ``<data_dir>/practitioners.yaml``
        or ``.csv`` if there is one."""
        return self._file_in_use(self.practitioners_file, "practitioners.yaml") or \
            self._file_in_use(None, "practitioners.csv")

    @property
    def critical_values_path(self) -> Path:
        """Where the facilities' critical-value lists are: the setting, else
        ``<data_dir>/critical-values``."""
        return self.critical_values_dir or self.data_dir / "critical-values"

    @property
    def federation_path(self) -> Path | None:
        """The federation file in use: the setting, else ``<data_dir>/federation.yaml``."""
        return self._file_in_use(self.federation_file, "federation.yaml")

    @property
    def users_path(self) -> Path | None:
        """The users file in use: the setting, else ``<data_dir>/users.yaml`` if any."""
        return self._file_in_use(self.users_file, "users.yaml")

    @property
    def plan(self) -> Plan:
        """What a process with these settings starts (`hutong.components`)."""
        return plan(self.components, kafka_bootstrap=self.kafka_bootstrap,
                    clickhouse_url=self.clickhouse_url)

    @property
    def embedded_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def topic_partitions(self) -> int:
        """Partitions of the topics hutong creates (and of the stream worker's tables).

        On the embedded broker a partition no worker needs costs CPU for nothing: Tansu
        answers every fetch of every partition by every consumer, full or empty, so the
        broker idled at about half a core with three partitions and a quarter with one
        (docs/performance.md). An external cluster gets room to add workers.
        """
        if self.kafka_partitions is not None:
            return self.kafka_partitions
        if self.embedded_broker:
            return max(1, self.streams_workers)
        return DEFAULT_PARTITIONS

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka settings every hutong client starts from."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, **self.kafka_config}
        if self.kafka_sasl_password is not None:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return config

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.http_host in {"0.0.0.0", "::"} else self.http_host  # noqa: S104
        return f"{'https' if self.http_tls else 'http'}://{host}:{self.http_port}"

    def api_verify(self) -> ssl.SSLContext | bool:
        """What the CLI trusts of the hub's API: ``api_ca_file``, else the system store."""
        if not self.http_tls or self.api_ca_file is None:
            return True
        return ssl.create_default_context(cafile=self.api_ca_file)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Secrets are masked (SecretStr), and so are passwords inside URLs."""
        for name, value in super().__repr_args__():
            if name in URL_FIELDS and isinstance(value, str):
                value = mask_url(value)
            elif name in URL_FIELDS and isinstance(value, list):
                value = [mask_url(v) if isinstance(v, str) else v for v in value]
            yield name, value


#: Settings that are URLs and may carry a password (user:password@) or a token (?token=).
URL_FIELDS = frozenset({"kafka_bootstrap", "schema_registry_url", "clickhouse_url",
                        "docstore_url", "alert_webhook_urls"})


def mask_url(url: str) -> str:
    """``url`` with the password of its user part and its query string replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}" if ":" in user else netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _unknown_variables() -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        name
        for name in os.environ
        if name.startswith(ENV_PREFIX) and name not in known and name not in _META_VARIABLES
        and not name.startswith(_META_PREFIX)
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings, turning every problem into one ConfigError that names it."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist")
        os.environ["HUTONG_CONFIG"] = str(config_file)
    elif (named := os.environ.get("HUTONG_CONFIG")) and not Path(named).is_file():
        raise ConfigError(f"HUTONG_CONFIG names {named}, which does not exist")
    unknown = _unknown_variables()
    if unknown:
        raise ConfigError(f"unknown environment variable(s): {', '.join(unknown)}")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(
            f"invalid settings: {validation_problems(exc, root='settings')}") from exc
