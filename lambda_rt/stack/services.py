"""How each server of the embedded stack is started and probed.

One small class per server: the command line, the environment, the ports it
needs, and a health probe that checks the service *answers* (S3 healthz,
a Kafka metadata request, Redis PONG), not just that a port is open.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from lambda_rt.config import KafkaSettings, RedisSettings, Settings
from lambda_rt.stack import probes
from lambda_rt.stack.binaries import redis_server_binary, tansu_binary, weed_binary
from lambda_rt.stack.state import Credentials, StateLayout

__all__ = [
    "KafkaServer",
    "RedisServer",
    "S3Server",
    "Server",
    "redis_conf_quote",
    "servers_in_start_order",
    "write_redis_secrets",
]

GRPC_OFFSET = 10_000


class Server(Protocol):
    """What the launcher needs to know about one server."""

    @property
    def name(self) -> str: ...

    def executable(self) -> str: ...
    def command(self) -> list[str]: ...
    def env(self) -> dict[str, str] | None: ...
    def ports(self) -> dict[str, int]: ...
    def write_config(self) -> None: ...
    def endpoint(self) -> str: ...
    def answers(self) -> bool: ...


@dataclass(frozen=True)
class S3Server:
    """SeaweedFS ``weed mini``: S3 with credentials, loopback only, telemetry off."""

    settings: Settings
    layout: StateLayout
    creds: Credentials
    name: str = "s3"

    def executable(self) -> str:
        return weed_binary()

    def write_config(self) -> None:
        """The ``-s3.config`` identities file: without it SeaweedFS is open to anyone."""
        identities = {
            "identities": [
                {
                    "name": "lambda-rt",
                    "credentials": [
                        {"accessKey": self.creds.s3_access_key, "secretKey": self.creds.s3_secret_key}
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path = self.layout.s3_identities
        path.write_text(json.dumps(identities))
        path.chmod(0o600)

    def ports(self) -> dict[str, int]:
        st = self.settings.stack
        http = {
            "s3_port": st.s3_port,
            "s3_master_port": st.s3_master_port,
            "s3_volume_port": st.s3_volume_port,
            "s3_filer_port": st.s3_filer_port,
        }
        grpc = {f"{k} (+{GRPC_OFFSET} gRPC)": v + GRPC_OFFSET for k, v in http.items()}
        return {**http, **grpc}

    def command(self) -> list[str]:
        st = self.settings.stack
        return [
            self.executable(),
            "mini",
            f"-dir={self.layout.s3_data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.layout.s3_identities}",
            f"-s3.port={st.s3_port}",
            f"-s3.port.grpc={st.s3_port + GRPC_OFFSET}",
            f"-master.port={st.s3_master_port}",
            f"-master.port.grpc={st.s3_master_port + GRPC_OFFSET}",
            f"-volume.port={st.s3_volume_port}",
            f"-volume.port.grpc={st.s3_volume_port + GRPC_OFFSET}",
            f"-filer.port={st.s3_filer_port}",
            f"-filer.port.grpc={st.s3_filer_port + GRPC_OFFSET}",
            # The admin server has no UI here but still opens a gRPC port.
            f"-admin.port={st.s3_master_port + 1}",
            f"-admin.port.grpc={st.s3_master_port + 1 + GRPC_OFFSET}",
        ]

    def env(self) -> dict[str, str] | None:
        return None

    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.stack.s3_port}"

    def answers(self) -> bool:
        return probes.s3_answers(self.endpoint())


@dataclass(frozen=True)
class KafkaServer:
    """The tansu broker, stored durably in the S3 server (or in memory for tests)."""

    settings: Settings
    layout: StateLayout
    creds: Credentials
    name: str = "kafka"

    def executable(self) -> str:
        return tansu_binary()

    def write_config(self) -> None:
        """Nothing to write: the broker is configured by flags and environment."""

    def ports(self) -> dict[str, int]:
        return {"kafka_port": self.settings.stack.kafka_port}

    def endpoint(self) -> str:
        return f"127.0.0.1:{self.settings.stack.kafka_port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.endpoint()}"
        bucket = self.settings.s3.broker_bucket
        storage = f"s3://{bucket}/" if self.settings.stack.broker_storage == "s3" else "memory://tansu/"
        return [
            self.executable(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage,
        ]

    def env(self) -> dict[str, str] | None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "AWS_ACCESS_KEY_ID": self.creds.s3_access_key,
                "AWS_SECRET_ACCESS_KEY": self.creds.s3_secret_key,
                "AWS_DEFAULT_REGION": self.settings.s3.region,
                "AWS_ENDPOINT": f"http://127.0.0.1:{self.settings.stack.s3_port}",
                "AWS_ALLOW_HTTP": "true",
            }
        )
        return env

    def answers(self) -> bool:
        return probes.kafka_answers(KafkaSettings(bootstrap=self.endpoint()))


@dataclass(frozen=True)
class RedisServer:
    """Debian's redis-server with AOF every second and a generated password."""

    settings: Settings
    layout: StateLayout
    creds: Credentials
    name: str = "redis"

    def executable(self) -> str:
        return redis_server_binary()

    def write_config(self) -> None:
        """The password goes in a private config file: argv is visible in ps."""
        # masterauth: after a failover (stack.redis_ha) this node may become a replica
        write_redis_secrets(self.layout.redis_data / "secrets.conf", self.creds.redis_password)

    def ports(self) -> dict[str, int]:
        return {"redis_port": self.settings.stack.redis_port}

    def endpoint(self) -> str:
        return f"redis://127.0.0.1:{self.settings.stack.redis_port}/0"

    def command(self) -> list[str]:
        conf = self.layout.redis_data / "secrets.conf"
        return [
            self.executable(),
            str(conf),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.settings.stack.redis_port),
            "--dir",
            str(self.layout.redis_data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
        ]

    def env(self) -> dict[str, str] | None:
        return None

    def answers(self) -> bool:
        return probes.redis_answers(
            RedisSettings(url=self.endpoint(), password=SecretStr(self.creds.redis_password))
        )


def servers_in_start_order(settings: Settings, layout: StateLayout, creds: Credentials) -> list[Server]:
    """S3 first (the broker stores its log there), then the broker, then Redis.

    With ``stack.redis_ha``: then Redis' replica and three Sentinels
    (:mod:`lambda_rt.stack.redis_ha`).
    """
    servers: list[Server] = [
        S3Server(settings, layout, creds),
        KafkaServer(settings, layout, creds),
        RedisServer(settings, layout, creds),
    ]
    if settings.stack.redis_ha:
        from lambda_rt.stack.redis_ha import ha_servers

        servers += ha_servers(settings, layout, creds)
    return servers


def write_redis_secrets(conf: Path, password: str) -> None:
    """A private Redis config file with the password, for a primary or a replica.

    ``masterauth`` too: any data node may be (or become, after a failover) a
    replica. Quoted for redis.conf, so any generated password is taken whole.
    """
    quoted = redis_conf_quote(password)
    conf.write_text(f"requirepass {quoted}\nmasterauth {quoted}\n")
    conf.chmod(0o600)


def redis_conf_quote(value: str) -> str:
    """``value`` as one double-quoted redis.conf argument (backslashes and quotes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
