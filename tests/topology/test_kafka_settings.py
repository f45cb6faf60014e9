"""Kafka settings for a real cluster: topic layout from settings, drift reported, TLS/SASL example."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import ConfigResource

from lambda_rt.clients.kafka import ensure_topics, make_admin
from lambda_rt.clients.kafka_auth import client_config
from lambda_rt.clients.kafka_topics import topic_drift
from lambda_rt.config import Settings, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _kafka(stack_settings: Settings, **update: Any) -> Any:
    tag = uuid.uuid4().hex[:10]
    return stack_settings.kafka.model_copy(
        update={"topic": f"events-{tag}", "dlq_topic": f"events-{tag}.dlq", **update}
    )


def test_topics_take_partitions_replication_and_min_isr_from_settings(stack_settings: Settings) -> None:
    kafka = _kafka(stack_settings, partitions=3, replication_factor=1, min_insync_replicas=1)
    assert ensure_topics(kafka) == [kafka.topic, kafka.dlq_topic]
    admin = make_admin(kafka)
    topic = admin.list_topics(timeout=10).topics[kafka.topic]
    assert len(topic.partitions) == 3
    assert {len(p.replicas) for p in topic.partitions.values()} == {1}
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, kafka.topic)]).values()
    assert future.result(timeout=10)["min.insync.replicas"].value == "1"
    assert topic_drift(admin, kafka) == []


def test_existing_topic_that_differs_is_reported_not_altered(
    stack_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = _kafka(stack_settings, partitions=2)
    ensure_topics(kafka)
    wanted = kafka.model_copy(update={"partitions": 6, "min_insync_replicas": 2, "replication_factor": 3})
    with caplog.at_level(logging.WARNING, logger="lambda_rt.clients.kafka"):
        assert ensure_topics(wanted) == []
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert f"topic {kafka.topic} has 2 partitions, settings say 6" in said
    assert "replication factor 1, settings say 3" in said
    assert "min.insync.replicas=1, settings say 2" in said
    topic = make_admin(kafka).list_topics(timeout=10).topics[kafka.topic]
    assert len(topic.partitions) == 2  # never altered


def test_readme_tls_sasl_example_loads_and_builds_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    (block,) = [b for b in blocks if "security_protocol" in b]
    path = tmp_path / "lambda-rt.toml"
    path.write_text(block)
    monkeypatch.setenv("LAMBDA_RT_KAFKA__PASSWORD", "from-the-environment")
    s = load_settings(state_dir=tmp_path / "state", config_file=path)
    assert s.kafka.replication_factor == 3 and s.kafka.min_insync_replicas == 2
    assert s.redis.sentinels and s.redis.master_name == "lambda-rt"
    conf = client_config(s.kafka)
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanisms"] == "SCRAM-SHA-512" and conf["sasl.username"] == "lambda-rt"
    assert conf["sasl.password"] == "from-the-environment"
    assert conf["ssl.ca.location"] == "probe"
    assert "from-the-environment" not in repr(s)
    # librdkafka accepts the whole configuration (it validates TLS/SASL properties on creation)
    Producer({**conf, "acks": "all", "enable.idempotence": True, "log_level": 0})
    Consumer({**conf, "group.id": "readme", "log_level": 0}).close()
