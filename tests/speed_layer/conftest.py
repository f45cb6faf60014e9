"""Speed-layer fixtures: a Redis client, the key layout, a producer of raw values.

Helpers that read the speed view back and compare it with the oracle live in
``tests.speed_layer.fixtures``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
import redis

from lambda_rt.clients.kafka import KafkaProducer
from lambda_rt.clients.redis import make_redis
from speed_layer.keys import SpeedKeys


@pytest.fixture
def redis_client(isolated) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    client = make_redis(isolated.settings.redis)
    yield client
    client.close()


@pytest.fixture
def keys(isolated) -> SpeedKeys:  # type: ignore[no-untyped-def]
    return SpeedKeys(isolated.settings.redis.key_prefix)


@pytest.fixture
def produce(isolated) -> Iterator[Callable[[Sequence[bytes]], None]]:  # type: ignore[no-untyped-def]
    """Produce raw values (key = None) to the test's topic and wait for acks."""
    with KafkaProducer(isolated.settings.kafka) as producer:

        def _produce(values: Sequence[bytes]) -> None:
            producer.produce_many(isolated.settings.kafka.topic, ((None, v) for v in values))
            producer.flush(30)

        yield _produce
