"""``status`` of a Redis failover setup: each data node's role and each Sentinel's view.

Reads only (INFO replication, SENTINEL GET-MASTER-ADDR-BY-NAME) with short
timeouts; never prints a secret and never raises for a node that is down.
"""

from __future__ import annotations

from typing import Any

import redis

from lambda_rt.clients.redis import sentinel_addresses
from lambda_rt.config import Settings
from lambda_rt.errors import LambdaRTError
from lambda_rt.stack import process
from lambda_rt.stack.binaries import redis_server_binary
from lambda_rt.stack.redis_ha import node_role
from lambda_rt.stack.state import StateLayout

__all__ = ["current_primary", "redis_ha_status"]


def _pid(layout: StateLayout, name: str) -> int | None:
    try:
        return process.running_pid(layout.pid(name), redis_server_binary())
    except LambdaRTError:
        return None


def _password(settings: Settings) -> str | None:
    pw = settings.redis.sentinel_password or settings.redis.password
    return pw.get_secret_value() if pw else None


def current_primary(settings: Settings, host: str, port: int) -> str | None:
    """``host:port`` of the primary that the Sentinel at ``host:port`` names, or None."""
    client = redis.Redis(
        host=host, port=port, password=_password(settings), socket_timeout=1, socket_connect_timeout=1
    )
    try:
        addr = client.sentinel_get_master_addr_by_name(settings.redis.master_name)
    except redis.RedisError:
        return None
    finally:
        client.close()
    if not addr:
        return None
    host_b = addr[0].decode() if isinstance(addr[0], bytes) else str(addr[0])
    return f"{host_b}:{int(addr[1])}"


def redis_ha_status(settings: Settings, layout: StateLayout) -> dict[str, Any]:
    """Data nodes (role, pid, link) and Sentinels (pid, the primary each names)."""
    data_pw = settings.redis.password.get_secret_value() if settings.redis.password else ""
    st = settings.stack
    nodes = []
    for name, port in (("redis", st.redis_port), ("redis-replica", st.redis_replica_port)):
        nodes.append(
            {
                "name": name,
                "endpoint": f"127.0.0.1:{port}",
                "pid": _pid(layout, name),
                **node_role(port, data_pw),
            }
        )
    sentinels = []
    addresses = sentinel_addresses(settings.redis) or [("127.0.0.1", p) for p in st.sentinel_ports]
    for i, (host, port) in enumerate(addresses):
        primary = current_primary(settings, host, port)
        sentinels.append(
            {
                "name": f"sentinel-{i + 1}",
                "endpoint": f"{host}:{port}",
                "pid": _pid(layout, f"sentinel-{i + 1}"),
                "up": primary is not None,
                "primary": primary,
            }
        )
    named = {s["primary"] for s in sentinels if s["primary"]}
    return {
        "master_name": settings.redis.master_name,
        "primary": named.pop() if len(named) == 1 else None,
        "nodes": nodes,
        "sentinels": sentinels,
    }
