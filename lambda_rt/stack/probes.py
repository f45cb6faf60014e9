"""Does a service answer? Real requests, short timeouts, no exceptions out.

An open port is not enough: Redis answers LOADING while it replays its AOF,
and the broker may accept connections before it serves metadata.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import redis
from confluent_kafka.admin import AdminClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from lambda_rt.clients.kafka_auth import client_config
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import KafkaSettings, RedisSettings

__all__ = ["kafka_answers", "pings", "redis_answers", "s3_answers"]


def kafka_answers(settings: KafkaSettings, timeout_s: float = 1.0) -> bool:
    """True when the broker serves a metadata request."""
    admin = AdminClient({**client_config(settings), "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:
        return False
    return True


def redis_answers(settings: RedisSettings, timeout_s: float = 1.0) -> bool:
    """True when Redis (the primary, through Sentinel when set) answers PING with PONG."""
    return pings(
        make_redis(
            settings, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
        )
    )


def pings(client: redis.Redis) -> bool:
    """True when ``client``'s server answers PING; closes the client either way."""
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def s3_answers(endpoint: str, timeout_s: float = 1.0) -> bool:
    """True when the S3 endpoint answers HTTP at all (403 to anonymous counts)."""
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/healthz", timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error status
    except (urllib.error.URLError, OSError):
        return False
