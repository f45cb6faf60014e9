"""Redis client factory for the speed view (redis-py with hiredis)."""

from __future__ import annotations

from typing import Any

import redis

from lambda_rt.config import RedisSettings

__all__ = ["make_redis"]


def make_redis(settings: RedisSettings, **overrides: Any) -> redis.Redis:
    """A client for ``settings.url``; the connection opens on first command."""
    password = settings.password.get_secret_value() if settings.password else None
    kwargs: dict[str, Any] = {"password": password, "socket_connect_timeout": 5}
    kwargs.update(overrides)
    client: redis.Redis = redis.Redis.from_url(settings.url, **kwargs)
    return client
