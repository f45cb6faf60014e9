"""Redis failover for the embedded stack: a replica and three Sentinels.

With ``stack.redis_ha`` on, ``lambda-rt up`` starts, beside the primary
(:class:`~lambda_rt.stack.services.RedisServer`, ``redis_port``):

- ``redis-replica``: the same redis-server (AOF, password) replicating the
  primary (``replicaof``, ``masterauth``);
- ``sentinel-1..3``: redis-server in Sentinel mode, quorum 2, monitoring the
  primary as ``redis.master_name``, with a password of their own (the stack's
  Redis password) and ``sentinel auth-pass`` for the data nodes.

All bind to loopback on the stack's own ports. After a failover the two data
nodes swap roles; a node restarted by ``up`` comes back with its AOF and the
Sentinels turn it into a replica of the current primary. Sentinels rewrite
their config file with what they learned, so it is written only once per
state dir. Clients find the primary through the Sentinels
(:func:`lambda_rt.clients.redis.make_redis`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import SecretStr

from lambda_rt.config import RedisSettings, Settings
from lambda_rt.stack import probes
from lambda_rt.stack.binaries import redis_server_binary
from lambda_rt.stack.services import redis_conf_quote, write_redis_secrets
from lambda_rt.stack.state import Credentials, StateLayout

__all__ = ["RedisReplicaServer", "SentinelServer", "ha_servers", "node_role", "sentinel_endpoints"]

log = logging.getLogger(__name__)

QUORUM = 2


def sentinel_endpoints(settings: Settings) -> list[str]:
    """``host:port`` of the stack's Sentinels."""
    return [f"127.0.0.1:{p}" for p in settings.stack.sentinel_ports]


@dataclass(frozen=True)
class RedisReplicaServer:
    """A second Redis data node replicating the primary (promoted by Sentinel on failover)."""

    settings: Settings
    layout: StateLayout
    creds: Credentials
    name: str = "redis-replica"

    @property
    def data_dir(self) -> Any:
        return self.layout.root / "redis-replica"

    def executable(self) -> str:
        return redis_server_binary()

    def write_config(self) -> None:
        """Password and primary's password in a private file (argv is visible in ps)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_redis_secrets(self.data_dir / "secrets.conf", self.creds.redis_password)

    def ports(self) -> dict[str, int]:
        return {"redis_replica_port": self.settings.stack.redis_replica_port}

    def endpoint(self) -> str:
        return f"redis://127.0.0.1:{self.settings.stack.redis_replica_port}/0"

    def command(self) -> list[str]:
        st = self.settings.stack
        cmd = [
            self.executable(),
            str(self.data_dir / "secrets.conf"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(st.redis_replica_port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        # First start: replicate the configured primary. Later starts (after a failover
        # this node may be the primary): no replicaof, the Sentinels set the role.
        if not (self.data_dir / "appendonlydir").exists():
            cmd += ["--replicaof", "127.0.0.1", str(st.redis_port)]
        return cmd

    def env(self) -> dict[str, str] | None:
        return None

    def answers(self) -> bool:
        """PONG, and as a replica a live link to its primary: a failover needs a synced copy."""
        if not probes.redis_answers(
            RedisSettings(url=self.endpoint(), password=SecretStr(self.creds.redis_password))
        ):
            return False
        role = node_role(self.settings.stack.redis_replica_port, self.creds.redis_password)
        return role.get("role") == "primary" or role.get("link") == "up"


@dataclass(frozen=True)
class SentinelServer:
    """One of three Sentinels (``redis-server <conf> --sentinel``)."""

    settings: Settings
    layout: StateLayout
    creds: Credentials
    index: int
    name: str = "sentinel"

    @property
    def port(self) -> int:
        return self.settings.stack.sentinel_ports[self.index]

    @property
    def conf(self) -> Any:
        return self.layout.root / "sentinel" / f"sentinel-{self.index + 1}.conf"

    def executable(self) -> str:
        return redis_server_binary()

    def write_config(self) -> None:
        """Write the config once: Sentinel rewrites it with the roles it learned."""
        if self.conf.is_file():
            return
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        st = self.settings.stack
        master = self.settings.redis.master_name
        pw = redis_conf_quote(self.creds.redis_password)
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f"dir {redis_conf_quote(str(self.conf.parent))}",
            f"requirepass {pw}",
            f"sentinel sentinel-pass {pw}",
            f"sentinel monitor {master} 127.0.0.1 {st.redis_port} {QUORUM}",
            f"sentinel auth-pass {master} {pw}",
            f"sentinel down-after-milliseconds {master} {st.sentinel_down_after_ms}",
            f"sentinel failover-timeout {master} {max(3000, 3 * st.sentinel_down_after_ms)}",
            f"sentinel parallel-syncs {master} 1",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.conf.chmod(0o600)

    def ports(self) -> dict[str, int]:
        return {f"sentinel_port_{self.index + 1}": self.port}

    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [self.executable(), str(self.conf), "--sentinel"]

    def env(self) -> dict[str, str] | None:
        return None

    def answers(self) -> bool:
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.creds.redis_password,
            socket_timeout=1,
            socket_connect_timeout=1,
        )
        return probes.pings(client)


def ha_servers(settings: Settings, layout: StateLayout, creds: Credentials) -> list[Any]:
    """The replica and the three Sentinels, in start order (after the primary)."""
    out: list[Any] = [RedisReplicaServer(settings, layout, creds)]
    out += [SentinelServer(settings, layout, creds, i, name=f"sentinel-{i + 1}") for i in range(3)]
    return out


def node_role(port: int, password: str) -> dict[str, Any]:
    """``role``, ``up`` and replication link of one data node (never raises)."""
    client = redis.Redis(
        host="127.0.0.1", port=port, password=password, socket_timeout=1, socket_connect_timeout=1
    )
    try:
        info = client.info("replication")
    except redis.RedisError:
        return {"up": False, "role": None}
    finally:
        client.close()
    out: dict[str, Any] = {"up": True, "role": "primary" if info.get("role") == "master" else "replica"}
    if out["role"] == "replica":
        out["primary"] = f"{info.get('master_host')}:{info.get('master_port')}"
        out["link"] = info.get("master_link_status")
    else:
        out["replicas"] = int(info.get("connected_slaves", 0))
    return out
