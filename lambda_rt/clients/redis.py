"""Redis client factory for the speed view (redis-py with hiredis).

With ``redis.sentinels`` set, the client asks the Sentinels for the current
primary of ``redis.master_name`` on every (re)connect, and retries a command
with exponential backoff for up to ``redis.failover_timeout_s`` while a
failover runs. Retrying a write is safe here: the speed layer's batch script is
guarded by partition offsets (a repeat is refused as stale), and every other
write is a plain SET of a value the caller holds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from lambda_rt.config import RedisSettings

__all__ = ["FailoverConnection", "failover_retry", "make_redis", "make_sentinel", "sentinel_addresses"]

_BACKOFF_BASE_S = 0.05
_BACKOFF_CAP_S = 0.5


class FailoverConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that asks the Sentinels again on *every* reconnect.

    redis-py 8.2 reconnects a dropped connection from ``send_packed_command``
    through ``connect_check_health()``, which bypasses the Sentinel lookup in
    ``SentinelManagedConnection.connect()``: after a failover the client kept
    dialling the dead primary until its retries ran out (measured: 21 s, while
    the Sentinels named the new primary after 2 s). Routing that call back
    through ``connect()`` makes every reconnect find the current primary.
    """

    _dialling = False

    def connect_to(self, address: Any) -> None:
        self._dialling = True
        try:
            super().connect_to(address)
        finally:
            self._dialling = False

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._dialling:
            super().connect_check_health(  # type: ignore[misc]  # redis-py 8 API, untyped here
                check_health=check_health, retry_socket_connect=retry_socket_connect
            )
            return
        if getattr(self, "_sock", None) is not None:
            return
        self.connect()


def sentinel_addresses(settings: RedisSettings) -> list[tuple[str, int]]:
    """``redis.sentinels`` as (host, port) pairs."""
    out = []
    for item in settings.sentinels:
        host, _, port = item.strip().rpartition(":")
        out.append((host or "127.0.0.1", int(port)))
    return out


def failover_retry(timeout_s: float) -> Retry:
    """A retry policy that outlasts a failover of ``timeout_s`` (backoff capped at 0.5 s)."""
    retries = max(1, int(timeout_s / _BACKOFF_CAP_S) + 4)
    return Retry(ExponentialBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S), retries)


def _password(settings: RedisSettings) -> str | None:
    return settings.password.get_secret_value() if settings.password else None


def make_sentinel(settings: RedisSettings, **overrides: Any) -> Sentinel:
    """A client of the Sentinels themselves (ask who is primary, which replicas exist)."""
    sentinel_pw = settings.sentinel_password or settings.password
    timeout = overrides.pop("socket_timeout", 5)
    return Sentinel(
        sentinel_addresses(settings),
        sentinel_kwargs={
            "password": sentinel_pw.get_secret_value() if sentinel_pw else None,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        },
        socket_timeout=timeout,
        **overrides,
    )


def make_redis(settings: RedisSettings, **overrides: Any) -> redis.Redis:
    """A client for the configured Redis; the connection opens on first command.

    Without Sentinels: ``settings.url``. With Sentinels: the current primary of
    ``settings.master_name``, found again after a failover, with retries
    (``overrides`` may pass ``retry=...`` to change that, e.g. for a probe).
    """
    password = _password(settings)
    if not settings.sentinels:
        kwargs: dict[str, Any] = {"password": password, "socket_connect_timeout": 5}
        kwargs.update(overrides)
        client: redis.Redis = redis.Redis.from_url(settings.url, **kwargs)
        return client
    db = int(urlparse(settings.url).path.lstrip("/") or 0)
    kwargs = {
        "password": password,
        "db": db,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "retry": failover_retry(settings.failover_timeout_s),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError],
        "connection_class": FailoverConnection,
    }
    kwargs.update(overrides)
    sentinel = make_sentinel(settings, socket_timeout=kwargs["socket_timeout"])
    master: redis.Redis = sentinel.master_for(settings.master_name, **kwargs)
    return master
