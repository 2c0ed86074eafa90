"""The federation file: who this hub is to the platform above it, what goes up, what comes down.

A district hub reports to the city platform, a city's to the province's
(docs/federation.md). ``<data_dir>/federation.yaml`` (or the file
``federation_file`` names) says how::

    platform_id: QSX-PLATFORM          # this hub at the upstream: a facility there,
                                       # of kind 区域卫生信息平台, holding the API key below
    up:                                # reporting up (数据规范上报)
      mode: http                       # http: the upstream hutong's ingest;
                                       # kafka: the upstream's Kafka; report: batch files
      url: https://city-hub.example/api/v1/ingest/federation
      api_key_file: /run/secrets/city-api-key
      event_types: [patient, encounter, lab-result, diagnosis, document]
      rules:                           # first match decides; no match: sent as it is
        - {name: 传染病, codes: ["A00-B99"], action: deidentify}
        - {name: 精神卫生, codes: ["F00-F99"], action: deidentify}
        - {name: HIV检测, event_types: [lab-result], codes: ["56888-1"], action: withhold}
    down:                              # dictionaries from above (市区两级字典库一致)
      bootstrap: city-kafka.example:9092
      kafka: {security.protocol: SASL_SSL, ...}

``mode: kafka`` takes ``bootstrap`` and ``kafka`` like ``down``; ``mode: report``
takes ``report_dir`` and ``report_every_s``. Every problem is one
:class:`~hutong.errors.ConfigError` naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from hutong.errors import ConfigError
from hutong.federation.rules import Rule
from hutong.yamlfile import load_model
from schemas.catalog import EVENT_TYPES

__all__ = ["Down", "Federation", "Up", "load_federation"]


class Up(BaseModel):
    """Reporting up: where, what, and which events leave de-identified or not at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["http", "kafka", "report"] = "http"
    url: str | None = Field(None, description="http: the upstream hub's federation ingest.")
    api_key: SecretStr | None = Field(None, description="http: the key the upstream gave.")
    api_key_file: Path | None = Field(None, description="http: a file holding the key.")
    timeout_s: float = Field(30.0, gt=0)
    bootstrap: str | None = Field(None, description="kafka: the upstream's bootstrap servers.")
    kafka: dict[str, str] = Field(default_factory=dict, description="kafka: client settings "
                                  "(security.protocol, sasl.*, ssl.*).")
    report_dir: Path | None = Field(None, description="report: where report files go.")
    report_every_s: float = Field(3600.0, gt=0, description="report: one file per period.")
    event_types: tuple[str, ...] = Field(default=EVENT_TYPES, min_length=1)
    rules: tuple[Rule, ...] = ()
    batch: int = Field(500, ge=1, le=5000, description="Events per delivery at most.")

    @model_validator(mode="after")
    def _complete(self) -> Up:
        unknown = sorted(set(self.event_types) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"event_types: unknown {', '.join(unknown)}")
        needed = {"http": ("url",), "kafka": ("bootstrap",), "report": ("report_dir",)}
        missing = [name for name in needed[self.mode] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"mode {self.mode} needs {', '.join(missing)}")
        if self.mode == "http" and self.api_key is None and self.api_key_file is None:
            raise ValueError("mode http needs api_key or api_key_file")
        return self

    def key(self) -> str:
        """The API key (http mode), from the setting or its file."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        assert self.api_key_file is not None  # noqa: S101 - checked by _complete
        try:
            return self.api_key_file.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"federation api_key_file {self.api_key_file}: cannot read "
                              f"({exc.strerror})") from exc

    @property
    def topics(self) -> list[str]:
        """The standardized topics that go up."""
        return [f"hutong.std.{kind}" for kind in self.event_types]


class Down(BaseModel):
    """Dictionaries from the platform above: its Kafka, read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("upstream", min_length=1, max_length=64, description=(
        "What this hub calls the platform above: the origin of the maps it applies."))
    bootstrap: str
    kafka: dict[str, str] = Field(default_factory=dict)

    def client_config(self) -> dict[str, str]:
        return {**self.kafka, "bootstrap.servers": self.bootstrap}


class Federation(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform_id: str = Field(min_length=1, max_length=64, pattern=r"^[^\s/|^&~\\]+$")
    up: Up | None = None
    down: Down | None = None


def load_federation(path: Path) -> Federation:
    """``path`` read and checked (an http key file is read now, to fail at start)."""
    federation = load_model(path, Federation, "federation file")
    if federation.up is not None and federation.up.mode == "http":
        federation.up.key()
    return federation
