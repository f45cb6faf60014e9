"""ClickHouse client factory: the embedded chDB engine or a server, one API.

Both are clickhouse-connect clients: ``chdb:///<path>`` opens the real
ClickHouse engine in this process, ``http(s)://`` connects to a server. chDB
allows one data directory per process and one process per directory; this
module turns the engine's cryptic failures into :class:`EngineLockedError`
with what to do about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, ProgrammingError

from lambda_rt.config import Settings
from lambda_rt.errors import EngineLockedError, ServiceUnavailableError

__all__ = ["Client", "open_clickhouse"]


def open_clickhouse(settings: Settings, *, database: str | None = None) -> Client:
    """Open the configured ClickHouse and make sure ``database`` exists.

    Args:
        settings: the settings tree; ``settings.clickhouse_dsn`` is used.
        database: database to create and use (default ``clickhouse.database``).

    Raises:
        EngineLockedError: another process owns the embedded data directory,
            or this process already opened a different one.
        ServiceUnavailableError: a ClickHouse server did not answer.
    """
    dsn = settings.clickhouse_dsn
    db = database or settings.clickhouse.database
    try:
        if dsn.startswith("chdb://"):
            Path(dsn.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=dsn)
        else:
            client = clickhouse_connect.get_client(dsn=dsn, **_server_kwargs(settings))
    except ProgrammingError as exc:
        text = str(exc)
        if "EmbeddedServer" in text or "lock" in text.lower():
            raise EngineLockedError(
                f"the embedded ClickHouse at {dsn.removeprefix('chdb://')} is in use by another "
                "process (chDB allows one process per data directory): send work through the "
                "running 'lambda-rt serve' daemon, or stop it first"
            ) from exc
        raise ServiceUnavailableError(f"cannot open ClickHouse {dsn}: {text}") from exc
    except ClickHouseError as exc:
        raise ServiceUnavailableError(f"cannot reach ClickHouse {dsn}: {exc}") from exc
    client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    client.database = db
    return client


def _server_kwargs(settings: Settings) -> dict[str, Any]:
    return {"connect_timeout": 5, "send_receive_timeout": 300}
