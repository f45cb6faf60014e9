"""The dead-letter queue: bad messages, byte for byte, with why and where from.

Shared by the speed layer and the batch ingest. A dead letter's value is the
original message bytes; its headers say ``reason`` (a ``Reason`` value),
``detail`` (free text), ``source_topic``, ``source_partition`` and
``source_offset``. Delivery is at-least-once: a layer sends its dead letters
and flushes them *before* it records the batch as done, so a crash can repeat
a dead letter but never lose one. ``(source_topic, source_partition,
source_offset)`` identifies a dead letter; :func:`read_dead_letters` can
deduplicate on it.

This module does not decide what is bad (``lambda_rt.events.validate`` does)
and does not consume the source topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lambda_rt.clients.kafka import Headers, KafkaProducer
from lambda_rt.config import KafkaSettings
from lambda_rt.consuming import read_topic

__all__ = ["DeadLetter", "DeadLetterWriter", "RejectLike", "read_dead_letters"]


class RejectLike(Protocol):
    """What :meth:`DeadLetterWriter.send` needs of a validator's reject."""

    @property
    def index(self) -> int: ...

    @property
    def reason(self) -> object: ...

    @property
    def detail(self) -> str: ...


@dataclass(frozen=True)
class DeadLetter:
    """One message read back from the DLQ topic."""

    value: bytes
    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int


def _reason_text(reason: object) -> str:
    value = getattr(reason, "value", reason)
    return str(value)


class DeadLetterWriter:
    """Produces rejected messages to the DLQ topic (see the module docstring).

    The writer does not own ``producer``: whoever created it closes it.
    """

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self.sent = 0

    def send(
        self,
        rejects: Sequence[RejectLike],
        values: Sequence[bytes | None],
        partitions: Sequence[int] | np.ndarray,
        offsets: Sequence[int] | np.ndarray,
        source_topic: str,
    ) -> int:
        """Queue one dead letter per reject; ``reject.index`` indexes ``values``.

        ``partitions`` and ``offsets`` are the source coordinates of every
        value, aligned with ``values``. Call :meth:`flush` before recording the
        batch as done. Returns the number queued.

        Raises:
            KafkaClientError: the producer queue stayed full or refused a message.
        """
        for r in rejects:
            i = int(r.index)
            headers: Headers = [
                ("reason", _reason_text(r.reason).encode()),
                ("detail", str(r.detail).encode()),
                ("source_topic", source_topic.encode()),
                ("source_partition", str(int(partitions[i])).encode()),
                ("source_offset", str(int(offsets[i])).encode()),
            ]
            self._producer.produce(self._topic, values[i], headers=headers)
        self.sent += len(rejects)
        self._producer.poll(0)
        return len(rejects)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until the broker acknowledged every queued dead letter.

        Raises:
            KafkaClientError: some were not acknowledged; the caller must not
                record its batch as done (it will be redone, never lost).
        """
        self._producer.flush(timeout_s)


def read_dead_letters(
    settings: KafkaSettings, topic: str | None = None, *, idle_s: float = 2.0, dedupe: bool = True
) -> list[DeadLetter]:
    """Read the DLQ topic from the beginning (tests, tooling).

    With ``dedupe`` (default), repeats of the same source message (possible
    after a crash, see the module docstring) are kept once.
    """
    contents = read_topic(settings, topic or settings.dlq_topic, idle_s=idle_s)
    out: list[DeadLetter] = []
    seen: set[tuple[str, int, int]] = set()
    for value, headers in zip(contents.values, contents.headers, strict=True):
        letter = DeadLetter(
            value=value,
            reason=headers.get("reason", b"").decode(),
            detail=headers.get("detail", b"").decode(),
            source_topic=headers.get("source_topic", b"").decode(),
            source_partition=int(headers.get("source_partition", b"-1")),
            source_offset=int(headers.get("source_offset", b"-1")),
        )
        ident = (letter.source_topic, letter.source_partition, letter.source_offset)
        if dedupe and ident in seen:
            continue
        seen.add(ident)
        out.append(letter)
    return out
