"""One typed, frozen settings tree for every lambda-rt process.

Sources, highest priority first:

1. keyword arguments to :func:`load_settings` (the CLI's flags),
2. environment variables ``LAMBDA_RT_*`` with ``__`` for nesting
   (``LAMBDA_RT_KAFKA__BOOTSTRAP``),
3. an optional ``lambda-rt.toml`` (``--config`` / ``LAMBDA_RT_CONFIG``, else
   ``./lambda-rt.toml`` when present),
4. what ``lambda-rt up`` wrote into the state dir (``stack.json`` with the
   endpoints it started, ``credentials.json`` with generated secrets), so every
   later command finds the embedded stack without the user copying anything,
5. defaults that point at the embedded stack.

The object is passed down explicitly; nothing deep in the code reads
``os.environ``. It does not connect to anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from lambda_rt.errors import ConfigError

__all__ = [
    "CREDENTIALS_FILE",
    "STACK_FILE",
    "BatchSettings",
    "ClickHouseSettings",
    "DaskSettings",
    "KafkaSettings",
    "RedisSettings",
    "S3Settings",
    "ServeSettings",
    "Settings",
    "SpeedSettings",
    "StackSettings",
    "load_settings",
]

STACK_FILE = "stack.json"
CREDENTIALS_FILE = "credentials.json"
ENV_PREFIX = "LAMBDA_RT_"

# Embedded-stack defaults: chosen clear of the services this machine kind
# already runs (Redis 6379, PostgreSQL 5432, MariaDB 3306, RabbitMQ 5672,
# Mosquitto 1883, NATS 4222) and of the tools' own defaults.
DEFAULT_KAFKA_PORT = 29092
DEFAULT_REDIS_PORT = 26379
DEFAULT_S3_PORT = 28333


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where events arrive and how consumers join their groups."""

    bootstrap: str = f"127.0.0.1:{DEFAULT_KAFKA_PORT}"
    topic: str = "events"
    dlq_topic: str = "events.dlq"
    partitions: int = Field(default=4, ge=1)
    # Topics the project creates get these; existing topics are checked against them.
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    # SASL login (the embedded stack generates a SCRAM user into credentials.json).
    username: str | None = None
    password: SecretStr | None = None
    mechanism: str = "SCRAM-SHA-256"
    # librdkafka security.protocol; None: SASL_PLAINTEXT with a username, else PLAINTEXT.
    security_protocol: str | None = None
    # tansu joins a group in about half the session timeout: keep it short.
    session_timeout_ms: int = Field(default=6000, ge=1000, le=10000)
    # 10 ms cuts the 100-150 ms a default 500 ms fetch wait adds.
    fetch_wait_max_ms: int = Field(default=10, ge=0)
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = 50 * 1024**3
    # Extra librdkafka properties (TLS, SASL) for real clusters.
    extra: dict[str, str] = Field(default_factory=dict)


class RedisSettings(_Section):
    """The speed view's store."""

    url: str = f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0"
    password: SecretStr | None = None
    key_prefix: str = "lrt"
    # Failover: "host:port" of Redis Sentinels; when set, every client asks them for
    # the primary of `master_name` (the url's host and port are then ignored).
    sentinels: tuple[str, ...] = ()
    master_name: str = "lambda-rt"
    # Sentinels' own password; None: the same as `password` (the embedded stack).
    sentinel_password: SecretStr | None = None
    # How long a command keeps retrying (with backoff) while a failover runs.
    failover_timeout_s: float = Field(default=20.0, gt=0)


class S3Settings(_Section):
    """Object storage for the cold tier and the durable broker."""

    endpoint: str = f"http://127.0.0.1:{DEFAULT_S3_PORT}"
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    region: str = "us-east-1"
    bucket: str = "lambda-rt"
    broker_bucket: str = "tansu"


class ClickHouseSettings(_Section):
    """The master dataset and batch views.

    ``dsn`` None means the embedded engine, ``chdb:///<state_dir>/clickhouse``;
    an ``http(s)://`` DSN points at a ClickHouse server.
    """

    dsn: str | None = None
    database: str = "lambda_rt"


class DaskSettings(_Section):
    """Where batch work runs: ``None`` starts a LocalCluster."""

    scheduler: str | None = None
    n_workers: int = Field(default=2, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    # LocalCluster workers as threads of this process (default): batch partitions are
    # then pushed down to the in-process ClickHouse engine; True = worker processes,
    # which get partitions exported as Arrow (as remote workers do).
    processes: bool = False
    # Where a LocalCluster serves its dashboard (needs bokeh): "127.0.0.1:0" a free local
    # port; "127.0.0.1:8787" a fixed one (the demo sets one to print its address);
    # ":8787" every interface (the dashboard has no authentication).
    dashboard_address: str = "127.0.0.1:0"


class SpeedSettings(_Section):
    """Speed-layer tuning."""

    group: str = "speed"
    batch_size: int = Field(default=20_000, ge=1)
    batch_timeout_ms: int = Field(default=50, ge=1)
    # Write batch k to Redis in a worker thread while batch k+1 is consumed and
    # aggregated (at most one write in flight; commits still follow the write).
    overlap_writes: bool = True
    retention_hours: int = Field(default=48, ge=1)
    max_event_age_ms: int = 7 * 24 * 3600 * 1000
    max_event_future_ms: int = 5 * 60 * 1000
    shed_event_types: tuple[str, ...] = ()
    shed_lag_threshold: int = Field(default=2_000_000, ge=0)
    shed_lag_seconds: float = Field(default=10.0, ge=0)
    metrics_port: int | None = None


class BatchSettings(_Section):
    """Batch-layer jobs: lateness, tier ages, schedule."""

    ingest_group: str = "ingest"
    ingest_batch_size: int = Field(default=50_000, ge=1)
    allowed_lateness_s: int = Field(default=600, ge=0)
    hot_to_warm_after_s: int = Field(default=6 * 3600, ge=0)
    warm_to_cold_after_s: int = Field(default=3 * 24 * 3600, ge=0)
    recompute_every_s: int = Field(default=300, ge=1)
    tier_cron: str = "0 * * * *"
    cold_prefix: str = "events"
    # How recompute runs a partition: "pushdown" (SQL in the owner's engine, needs
    # in-process Dask workers), "export" (Arrow to any worker), "auto" (pushdown
    # when every Dask worker is in this process).
    recompute_mode: Literal["auto", "export", "pushdown"] = "auto"
    cold_row_group_rows: int = Field(default=1_000_000, ge=1_000)
    # Test hook: exit hard (os._exit) right after the named step of a job
    # (e.g. "tier:copied", "ingest:inserted"); never set in production.
    crash_after: str | None = None


class ServeSettings(_Section):
    """The platform daemon's HTTP API."""

    host: str = "127.0.0.1"
    port: int = 28080
    token: SecretStr | None = None
    # gRPC (serving.grpc_api): same host and token; TLS when both paths are set
    grpc_port: int = Field(default=28090, ge=0, lt=65536)
    grpc_tls_cert: Path | None = None
    grpc_tls_key: Path | None = None
    # GraphQL (serving.graphql_api): limits that keep one request from costing the daemon a lot
    graphql_max_depth: int = Field(default=6, ge=1)
    graphql_max_tokens: int = Field(default=2_000, ge=10)
    graphql_max_aliases: int = Field(default=10, ge=1)
    graphql_max_request_bytes: int = Field(default=16_384, ge=1_024)


class StackSettings(_Section):
    """Ports of the embedded stack that ``lambda-rt up`` starts."""

    kafka_port: int = DEFAULT_KAFKA_PORT
    redis_port: int = DEFAULT_REDIS_PORT
    s3_port: int = DEFAULT_S3_PORT
    # SeaweedFS runs master, volume and filer servers behind its S3 gateway;
    # each also opens a gRPC port at +10000.
    s3_master_port: int = 29333
    s3_volume_port: int = 28081
    s3_filer_port: int = 28888
    broker_storage: Literal["s3", "memory"] = "s3"
    # Redis failover: a replica and three Sentinels beside the primary (redis_port).
    redis_ha: bool = False
    redis_replica_port: int = DEFAULT_REDIS_PORT + 1
    sentinel_ports: tuple[int, int, int] = (
        DEFAULT_REDIS_PORT + 2,
        DEFAULT_REDIS_PORT + 3,
        DEFAULT_REDIS_PORT + 4,
    )
    # Sentinels call a primary down after this long without an answer (then fail over).
    sentinel_down_after_ms: int = Field(default=1000, ge=100)
    start_timeout_s: float = Field(default=30.0, gt=0)


class Settings(BaseSettings):
    """The whole configuration of one lambda-rt process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    state_dir: Path = Path(".lambda-rt")
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    s3: S3Settings = S3Settings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    dask: DaskSettings = DaskSettings()
    speed: SpeedSettings = SpeedSettings()
    batch: BatchSettings = BatchSettings()
    serve: ServeSettings = ServeSettings()
    stack: StackSettings = StackSettings()

    @property
    def clickhouse_dsn(self) -> str:
        """The DSN in force: the configured one, else the embedded engine's path."""
        if self.clickhouse.dsn:
            return self.clickhouse.dsn
        return f"chdb://{(self.state_dir / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        """True when ClickHouse is the in-process chDB engine."""
        return self.clickhouse_dsn.startswith("chdb://")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _StateFilesSource(PydanticBaseSettingsSource):
    """``stack.json`` + ``credentials.json`` from the state dir, merged section by section."""

    def __init__(self, settings_cls: type[BaseSettings], files: list[Path]) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        for path in files:
            try:
                self._data = _deep_merge(self._data, json.loads(path.read_text()))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}; remove it and run 'lambda-rt up'") from exc

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


def _state_dir_from(explicit: Path | str | None, env: dict[str, str]) -> Path:
    raw = explicit or env.get(f"{ENV_PREFIX}STATE_DIR") or ".lambda-rt"
    return Path(raw).expanduser().resolve()


def _config_file_from(explicit: Path | str | None, env: dict[str, str]) -> Path | None:
    raw = explicit or env.get(f"{ENV_PREFIX}CONFIG")
    if raw:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    default = Path("lambda-rt.toml")
    return default if default.is_file() else None


def load_settings(
    state_dir: Path | str | None = None,
    config_file: Path | str | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from all sources (see the module docstring).

    Args:
        state_dir: the embedded stack's state dir (``--state-dir``).
        config_file: a ``lambda-rt.toml`` to read (``--config``).
        **overrides: top-level fields, e.g. ``kafka={"partitions": 8}``.

    Raises:
        ConfigError: a value is invalid; the message names the field.
    """
    environ = dict(os.environ)
    resolved_state = _state_dir_from(state_dir, environ)
    toml_path = _config_file_from(config_file, environ)
    state_files = [p for p in (resolved_state / STACK_FILE, resolved_state / CREDENTIALS_FILE) if p.is_file()]

    class _Bound(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
            if state_files:
                sources.append(_StateFilesSource(settings_cls, state_files))
            return tuple(sources)

    try:
        return _Bound(state_dir=resolved_state, **overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc
    except SettingsError as exc:  # e.g. a nested value in the environment that is not JSON
        raise ConfigError(f"invalid settings: {exc}") from exc
