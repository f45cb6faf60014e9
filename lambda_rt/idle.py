"""When may a consumer run with ``--until-idle SECONDS`` stop?

"No new message for SECONDS" is not enough in a consumer group: after a member
dies (kill -9), its partitions stay assigned to it until its session times out,
so a survivor that owns only some partitions can look idle while data waits on
the others. The rule here: idle counts from the later of the last message and
the last assignment change, and a member that does not own every partition of
the topic waits two session timeouts longer before it concludes it is idle.
"""

from __future__ import annotations

__all__ = ["idle_wait_s", "topic_partition_count"]


def idle_wait_s(until_idle_s: float, session_timeout_s: float, owned: int, total: int | None) -> float:
    """Seconds without activity after which the consumer may stop."""
    if total is not None and owned >= total:
        return until_idle_s
    return until_idle_s + 2 * session_timeout_s


def topic_partition_count(consumer: object, topic: str, timeout_s: float = 10.0) -> int | None:
    """How many partitions ``topic`` has (metadata), or None when unknown."""
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)  # type: ignore[attr-defined]
        return len(meta.topics[topic].partitions)
    except Exception:
        return None
