"""The Kafka wrapper's behaviour: bounded retry, bounded close, one consumer-error policy.

The "broker down" cases point the producer at a local port nothing listens on
(the real failure, not a mock); the others use the session's broker.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from confluent_kafka import KafkaError

from lambda_rt.clients.kafka import ConsumerErrorPolicy, KafkaProducer, ensure_topics, open_producers
from lambda_rt.config import KafkaSettings, Settings
from lambda_rt.consuming import read_topic
from lambda_rt.errors import KafkaClientError, LambdaRTError
from lambda_rt.stack.ports import free_port


def _nowhere() -> KafkaSettings:
    return KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", extra={"log_level": "0"})


def test_full_queue_is_retried_once_then_raises_with_the_kafka_error() -> None:
    producer = KafkaProducer(_nowhere(), queue_full_timeout_s=0.3, **{"queue.buffering.max.messages": 5})
    try:
        t0 = time.monotonic()
        with pytest.raises(KafkaClientError) as info:
            producer.produce_many("t", [(None, b"v")] * 6)
        assert time.monotonic() - t0 < 5
        assert isinstance(info.value, LambdaRTError)
        assert info.value.error.code() == KafkaError._QUEUE_FULL
    finally:
        producer.close(0)


def test_flush_raises_on_unacknowledged_and_close_is_bounded() -> None:
    producer = KafkaProducer(_nowhere())
    assert not producer.is_open  # lazy: no librdkafka handle before the first message
    producer.produce("t", b"v", headers=[("h", b"x")])
    assert producer in open_producers()
    with pytest.raises(KafkaClientError, match="1 were not acknowledged"):
        producer.flush(0.2)
    t0 = time.monotonic()
    assert producer.close(0.2) == 1
    assert time.monotonic() - t0 < 5
    assert not producer.is_open and producer not in open_producers()
    assert producer.close() == 0  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        producer.produce("t", b"v")


def test_produce_many_reaches_the_broker(stack_settings: Settings) -> None:
    topic = f"kc-{uuid.uuid4().hex[:8]}"
    kafka = stack_settings.kafka.model_copy(update={"topic": topic, "dlq_topic": topic + ".dlq"})
    ensure_topics(kafka)
    with KafkaProducer(kafka) as producer:
        assert producer.produce_many(topic, ((b"k", b"v%d" % i) for i in range(300))) == 300
        producer.flush(30)
    assert not producer.is_open
    assert len(read_topic(kafka, topic, idle_s=2).values) == 300


def test_consumer_policy_raises_only_what_librdkafka_cannot_recover(caplog: pytest.LogCaptureFixture) -> None:
    policy = ConsumerErrorPolicy(log_every_s=60)
    policy.check(KafkaError(KafkaError._PARTITION_EOF))
    with caplog.at_level(logging.WARNING, logger="lambda_rt.clients.kafka"):
        policy.check(KafkaError(KafkaError._TRANSPORT))
        policy.check(KafkaError(KafkaError._TRANSPORT))
    assert len(caplog.records) == 1  # once per code per log_every_s
    for err in (
        KafkaError(KafkaError._FAIL, "boom", fatal=True),
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),
    ):
        with pytest.raises(KafkaClientError) as info:
            policy.check(err)
        assert info.value.error is err
    assert policy.good([]) == []
