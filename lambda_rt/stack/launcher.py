"""``lambda-rt up | down | status``: the embedded stack on real servers.

``up`` starts SeaweedFS S3, the tansu broker (stored in that S3) and Redis
under the state dir, waits until each *answers*, creates the topics and
records endpoints and credentials for later commands. It is idempotent: a
server already running from this state dir is left alone. ``down`` stops only
what ``up`` started (pid files), broker first so it flushes to S3 while S3 is
still up. ClickHouse is not a server here: it is the in-process chDB engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambda_rt.clients.kafka import ensure_topics
from lambda_rt.config import Settings, load_settings
from lambda_rt.errors import LambdaRTError
from lambda_rt.stack import probes, process
from lambda_rt.stack.binaries import redis_server_binary, tansu_binary, weed_binary
from lambda_rt.stack.services import Server, servers_in_start_order
from lambda_rt.stack.state import StateLayout, ensure_credentials, write_stack_file

__all__ = ["ServiceState", "down", "running_stack", "status", "up"]


@dataclass(frozen=True)
class ServiceState:
    """What ``up`` did for one server."""

    name: str
    endpoint: str
    pid: int | None
    started: bool  # False: it was already running


def _servers(settings: Settings) -> tuple[StateLayout, list[Server]]:
    layout = StateLayout(settings.state_dir)
    layout.create()
    creds = ensure_credentials(layout.root)
    return layout, servers_in_start_order(settings, layout, creds)


def up(settings: Settings) -> list[ServiceState]:
    """Start every server that is not running yet and wait until all answer.

    Raises:
        PortInUseError: a port is taken by a process this state dir did not start.
        ServiceStartError: a server did not answer in time (names its log file).
    """
    layout, servers = _servers(settings)
    result: list[ServiceState] = []
    for server in servers:
        pid_file = layout.pid(server.name)
        pid = process.running_pid(pid_file, server.executable())
        if pid is not None and server.answers():
            result.append(ServiceState(server.name, server.endpoint(), pid, started=False))
            continue
        if pid is not None:  # alive but not answering yet (e.g. Redis loading its AOF)
            process.wait_until(
                server.answers,
                timeout_s=settings.stack.start_timeout_s,
                service=server.name,
                log_file=layout.log(server.name),
            )
            result.append(ServiceState(server.name, server.endpoint(), pid, started=False))
            continue
        process.require_free_ports(server.name, server.ports())
        server.write_config()
        pid = process.spawn(
            server.command(),
            log_file=layout.log(server.name),
            pid_file=pid_file,
            env=server.env(),
        )
        process.wait_until(
            server.answers,
            timeout_s=settings.stack.start_timeout_s,
            service=server.name,
            log_file=layout.log(server.name),
            alive=_alive_check(pid_file, server.executable()),
        )
        result.append(ServiceState(server.name, server.endpoint(), pid, started=True))
    write_stack_file(settings)
    # Re-read so the client sections carry the endpoints and credentials just written.
    ensure_topics(load_settings(state_dir=settings.state_dir).kafka)
    return result


@contextmanager
def running_stack(state_dir: Path | str, **stack: Any) -> Iterator[Settings]:
    """Start a stack under ``state_dir`` with ``stack`` overrides, yield its settings, stop it.

    For tests, benchmarks and side-by-side stacks: the yielded settings are
    re-read after ``up`` so they carry the recorded endpoints and credentials.
    """
    up(load_settings(state_dir=state_dir, stack=stack))
    settings = load_settings(state_dir=state_dir)
    try:
        yield settings
    finally:
        down(settings)


def _alive_check(pid_file: Path, executable: str) -> Callable[[], bool]:
    return lambda: process.running_pid(pid_file, executable) is not None


def down(settings: Settings) -> list[str]:
    """Stop the servers this state dir started, in reverse order; return their names."""
    layout, servers = _servers(settings)
    stopped = []
    for server in reversed(servers):
        if process.stop(layout.pid(server.name), server.executable()):
            stopped.append(server.name)
    return stopped


def status(settings: Settings) -> dict[str, Any]:
    """Each configured endpoint and whether it answers; never any secret."""
    layout = StateLayout(settings.state_dir)

    def _pid(name: str, binary: Callable[[], str]) -> int | None:
        try:
            return process.running_pid(layout.pid(name), binary())
        except LambdaRTError:
            return None

    report: dict[str, Any] = {
        "state_dir": str(settings.state_dir),
        "kafka": {
            "bootstrap": settings.kafka.bootstrap,
            "topic": settings.kafka.topic,
            "dlq_topic": settings.kafka.dlq_topic,
            "up": probes.kafka_answers(settings.kafka),
            "pid": _pid("kafka", tansu_binary),
            "storage": settings.stack.broker_storage,
        },
        "redis": {
            "url": settings.redis.url,
            "up": probes.redis_answers(settings.redis),
            "pid": _pid("redis", redis_server_binary),
        },
        "s3": {
            "endpoint": settings.s3.endpoint,
            "bucket": settings.s3.bucket,
            "up": probes.s3_answers(settings.s3.endpoint),
            "pid": _pid("s3", weed_binary),
        },
        "clickhouse": {
            "dsn": settings.clickhouse_dsn,
            "embedded": settings.embedded_clickhouse,
            "database": settings.clickhouse.database,
        },
    }
    from lambda_rt.supervisor import read_run_file

    processes = read_run_file(settings)
    if processes is not None:  # `lambda-rt run`: each supervised process
        report["processes"] = processes
    if settings.stack.redis_ha or settings.redis.sentinels:
        from lambda_rt.stack.redis_status import redis_ha_status

        report["redis"]["sentinels"] = list(settings.redis.sentinels)
        report["redis"]["master_name"] = settings.redis.master_name
        ha = redis_ha_status(settings, layout)
        report["redis_ha"] = ha
        primary = [n for n in ha["nodes"] if n.get("role") == "primary" and n["endpoint"] == ha["primary"]]
        report["redis"]["primary"] = ha["primary"]  # what the Sentinels name; clients follow it
        report["redis"]["primary_pid"] = primary[0]["pid"] if primary else None
    return report
