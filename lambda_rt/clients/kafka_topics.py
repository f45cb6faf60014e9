"""The topics the project creates, and how existing ones differ from the settings.

Partitions, replication factor and ``min.insync.replicas`` come from
``kafka.*``. A topic that exists already is never altered (changing the
partition count of a keyed topic moves keys between partitions, and a
replication change is a reassignment an operator plans): :func:`topic_drift`
says what differs, and the caller logs it at start.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from lambda_rt.config import KafkaSettings

__all__ = ["topic_drift", "wanted_topics"]

log = logging.getLogger(__name__)


def wanted_topics(settings: KafkaSettings) -> list[NewTopic]:
    """The events topic and its DLQ as the settings describe them.

    Topics carry ``retention.ms`` and ``retention.bytes``: the embedded broker
    reports no topic configs otherwise, and some clients fail on that.
    """
    config = {
        "retention.ms": str(settings.retention_ms),
        "retention.bytes": str(settings.retention_bytes),
        "min.insync.replicas": str(settings.min_insync_replicas),
    }
    rf = settings.replication_factor
    return [
        NewTopic(settings.topic, num_partitions=settings.partitions, replication_factor=rf, config=config),
        NewTopic(settings.dlq_topic, num_partitions=1, replication_factor=rf, config=config),
    ]


def _min_isr(admin: AdminClient, topic: str, timeout_s: float) -> str | None:
    try:
        futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
        (future,) = futures.values()
        entries: dict[str, Any] = future.result(timeout=timeout_s)
    except (KafkaException, ValueError, TimeoutError) as exc:
        log.debug("describe_configs(%s) failed: %s", topic, exc)
        return None
    entry = entries.get("min.insync.replicas")
    return None if entry is None or entry.value is None else str(entry.value)


def topic_drift(admin: AdminClient, settings: KafkaSettings, *, timeout_s: float = 10.0) -> list[str]:
    """One sentence per difference between the existing topics and the settings."""
    metadata = admin.list_topics(timeout=timeout_s).topics
    out: list[str] = []
    for want in wanted_topics(settings):
        have = metadata.get(want.topic)
        if have is None or have.error is not None:
            continue
        parts = have.partitions
        if want.topic == settings.topic and len(parts) != want.num_partitions:
            out.append(
                f"topic {want.topic} has {len(parts)} partitions, settings say {want.num_partitions} "
                "(kafka.partitions); left as is: changing it moves keys between partitions"
            )
        replicas = {len(p.replicas) for p in parts.values()}
        if replicas and replicas != {want.replication_factor}:
            found = ",".join(str(r) for r in sorted(replicas))
            out.append(
                f"topic {want.topic} has replication factor {found}, settings say "
                f"{want.replication_factor} (kafka.replication_factor); reassign its partitions to change it"
            )
        isr = _min_isr(admin, want.topic, timeout_s)
        if isr is not None and isr != str(settings.min_insync_replicas):
            out.append(
                f"topic {want.topic} has min.insync.replicas={isr}, settings say "
                f"{settings.min_insync_replicas} (kafka.min_insync_replicas); "
                f"kafka-configs --alter --entity-type topics --entity-name {want.topic} "
                f"--add-config min.insync.replicas={settings.min_insync_replicas}"
            )
    return out
