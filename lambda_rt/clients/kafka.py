"""Kafka clients with the project's behaviour (confluent-kafka).

* :class:`KafkaProducer`: the only producer the project creates. It is
  created lazily (no librdkafka handle before the first message), retries a
  full local queue once after letting it drain, turns every failure into
  :class:`~lambda_rt.errors.KafkaClientError`, and :meth:`KafkaProducer.close`
  flushes for a bounded time, then drops what is left and destroys the handle,
  so no producer keeps reconnecting after the stack is gone. Use it as a
  context manager.
* :class:`ConsumerErrorPolicy`: the one rule both consuming layers apply to
  the error events ``consume()`` returns (see its docstring).
* Factories for consumers and the admin client, and :func:`ensure_topics`.

Creating a confluent-kafka client makes no blocking network call. Consumers get
the settings this broker needs (short session timeout, short fetch wait, manual
commits). Nothing here trusts broker high watermarks: tansu reports them wrong.
"""

from __future__ import annotations

import logging
import sys
import time
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from lambda_rt.clients.kafka_auth import client_config
from lambda_rt.clients.kafka_topics import topic_drift, wanted_topics
from lambda_rt.config import KafkaSettings
from lambda_rt.errors import KafkaClientError, ServiceUnavailableError

__all__ = [
    "ConsumerErrorPolicy",
    "Headers",
    "KafkaProducer",
    "ensure_topics",
    "make_admin",
    "make_consumer",
    "open_producers",
]

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
    "compression.type": "lz4",
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
}
"""An idempotent, batching producer (lz4) for events and the DLQ; acks from all in-sync replicas."""

_OPEN: weakref.WeakSet[KafkaProducer] = weakref.WeakSet()


def open_producers() -> list[KafkaProducer]:
    """Producers that hold a librdkafka handle and were not closed (tests assert none at teardown)."""
    return [p for p in _OPEN if p.is_open]


class KafkaProducer:
    """A typed producer with one bounded retry on a full queue and a bounded close.

    The local queue fills when the broker acknowledges slower than we produce.
    Then :meth:`produce` waits (serving delivery reports) until the queue has
    drained to half of what it held, at most ``queue_full_timeout_s``, and
    tries once more: half a queue still keeps the broker busy, so this costs
    no throughput, and a broker that does not drain the queue in that time is
    reported as :class:`KafkaClientError` instead of blocking for ever.

    Delivery failures are counted; :meth:`flush` raises when any message since
    the previous flush failed or is still unacknowledged, so a caller never
    records as done what the broker did not take.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        queue_full_timeout_s: float = 30.0,
        close_timeout_s: float = 10.0,
        **overrides: Any,
    ) -> None:
        self._conf: dict[str, Any] = {**_base(settings), **PRODUCER_DEFAULTS, **overrides}
        self._queue_full_timeout_s = queue_full_timeout_s
        self._close_timeout_s = close_timeout_s
        self._producer: Producer | None = None
        self._closed = False
        self._failed = 0
        self._first_error: KafkaError | None = None
        self._on_delivery = self._delivered
        caller = sys._getframe(1)
        self.created_at = f"{caller.f_code.co_filename}:{caller.f_lineno}"
        """Where this producer was created (named when one is left open)."""

    # -- lifecycle --------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """Whether a librdkafka handle exists (it does from the first message until close)."""
        return self._producer is not None

    def _handle(self) -> Producer:
        if self._producer is None:
            if self._closed:
                raise RuntimeError(f"producer created at {self.created_at} is closed")
            self._producer = Producer(self._conf)
            _OPEN.add(self)
        return self._producer

    def close(self, timeout_s: float | None = None) -> int:
        """Flush for at most ``timeout_s`` (default ``close_timeout_s``), drop the rest, destroy.

        Never raises and never blocks longer than the timeout: it runs in
        ``finally`` blocks and at shutdown, when the broker may be gone.
        Returns the number of messages dropped unacknowledged. Idempotent.
        """
        self._closed = True
        producer, self._producer = self._producer, None
        _OPEN.discard(self)
        if producer is None:
            return 0
        left = producer.flush(self._close_timeout_s if timeout_s is None else timeout_s)
        if left:
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.poll(0)
            logger.warning("Kafka producer closed with %d messages unacknowledged (dropped)", left)
        producer.close()
        return left

    # -- producing --------------------------------------------------------------
    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed += 1
            if self._first_error is None:
                self._first_error = err

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None, headers: Headers | None = None
    ) -> None:
        """Queue one message (see the class docstring for a full queue).

        Raises:
            KafkaClientError: the queue stayed full, or librdkafka refused the message.
        """
        producer = self._handle()
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=self._on_delivery)
        except BufferError:
            self._retry_full(topic, value, key, headers)
        except KafkaException as exc:
            raise _produce_error(topic, exc) from exc

    def produce_many(self, topic: str, pairs: Iterable[tuple[bytes | None, bytes | None]]) -> int:
        """Queue every ``(key, value)`` of ``pairs``; returns how many. Same errors as :meth:`produce`."""
        producer = self._handle()
        produce, on_delivery = producer.produce, self._on_delivery
        n = 0
        for key, value in pairs:
            try:
                produce(topic, value, key, on_delivery=on_delivery)
            except BufferError:
                self._retry_full(topic, value, key, None)
            except KafkaException as exc:
                raise _produce_error(topic, exc) from exc
            n += 1
        producer.poll(0)
        return n

    def _retry_full(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers | None
    ) -> None:
        producer = self._handle()
        queued = len(producer)
        deadline = time.monotonic() + self._queue_full_timeout_s
        while len(producer) > queued // 2 and time.monotonic() < deadline:
            producer.poll(0.05)
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=self._on_delivery)
        except BufferError as exc:
            raise KafkaClientError(
                f"the producer queue for {topic} stayed full for {self._queue_full_timeout_s:g} s "
                f"({len(producer)} messages waiting): is the broker at {self._conf['bootstrap.servers']} up?",
                KafkaError(KafkaError._QUEUE_FULL),
            ) from exc
        except KafkaException as exc:
            raise _produce_error(topic, exc) from exc

    def connect(self, timeout_s: float = 10.0) -> bool:
        """Create the client now and wait until the broker answered a metadata request.

        Creation is lazy, so without this the first message waits for the
        connection and the idempotent producer's id (hundreds of ms): call it
        before a loop whose first batch must not carry that wait. Returns
        False (and the producer still connects by itself later) when the broker
        did not answer within ``timeout_s``.
        """
        try:
            self._handle().list_topics(timeout=timeout_s)
        except KafkaException as exc:
            logger.warning("Kafka at %s did not answer yet: %s", self._conf["bootstrap.servers"], exc)
            return False
        return True

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports; returns how many."""
        return self._producer.poll(timeout_s) if self._producer is not None else 0

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until the broker acknowledged every queued message.

        Raises:
            KafkaClientError: some messages since the previous flush failed or
                were not acknowledged in ``timeout_s``; the caller must not
                record them as delivered. The failure counts start again.
        """
        left = self._producer.flush(timeout_s) if self._producer is not None else 0
        failed, self._failed = self._failed, 0
        first, self._first_error = self._first_error, None
        if left or failed:
            error = first or KafkaError(KafkaError._TIMED_OUT)
            raise KafkaClientError(
                f"{failed} messages failed and {left} were not acknowledged "
                f"in {timeout_s:g} s ({error.str()})",
                error,
            )


def _produce_error(topic: str, exc: KafkaException) -> KafkaClientError:
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else KafkaError(KafkaError._FAIL)
    return KafkaClientError(f"cannot produce to {topic}: {error.str()}", error)


class ConsumerErrorPolicy:
    """What a consuming loop does with the error events ``consume()`` returns.

    librdkafka recovers from broker and network errors by itself (reconnect,
    re-fetch), so those are logged (once per error code per ``log_every_s``)
    and skipped. It cannot recover from a fatal error or from a refused
    authentication or authorization: an operator must act, so those raise
    :class:`KafkaClientError`. End-of-partition events are not errors.
    """

    OPERATOR_CODES = frozenset(
        {
            KafkaError._AUTHENTICATION,
            KafkaError._SSL,
            KafkaError.SASL_AUTHENTICATION_FAILED,
            KafkaError.TOPIC_AUTHORIZATION_FAILED,
            KafkaError.GROUP_AUTHORIZATION_FAILED,
        }
    )

    def __init__(self, *, log_every_s: float = 10.0) -> None:
        self._log_every_s = log_every_s
        self._logged: dict[int, float] = {}

    def good(self, msgs: list[Message]) -> list[Message]:
        """The messages without an error (``msgs`` itself when none has one).

        Raises:
            KafkaClientError: an error the client cannot recover from.
        """
        if not any(map(Message.error, msgs)):
            return msgs
        good: list[Message] = []
        for m in msgs:
            err = m.error()
            if err is None:
                good.append(m)
            else:
                self.check(err)
        return good

    def check(self, err: KafkaError) -> None:
        """Raise for ``err`` if the client cannot recover from it; log it otherwise."""
        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            return
        if err.fatal() or code in self.OPERATOR_CODES:
            raise KafkaClientError(f"Kafka consumer failed: {err.str()} ({err.name()})", err)
        now = time.monotonic()
        if now - self._logged.get(code, -self._log_every_s) >= self._log_every_s:
            self._logged[code] = now
            logger.warning("Kafka consumer error (librdkafka retries): %s (%s)", err.str(), err.name())


def _base(settings: KafkaSettings) -> dict[str, Any]:
    return client_config(settings)


def make_consumer(settings: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    """A manual-commit consumer in ``group_id`` that joins this broker quickly."""
    conf: dict[str, Any] = {
        **_base(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": max(500, settings.session_timeout_ms // 4),
        "fetch.wait.max.ms": settings.fetch_wait_max_ms,
        "partition.assignment.strategy": "cooperative-sticky",
        # keep fetching until 1M messages per partition are queued (memory stays bounded by
        # queued.max.messages.kbytes, 64 MB): at the default 100K a Python consumer of this
        # broker read 185-220K msgs/s, with 1M 550-860K msgs/s (same topic, same run)
        "queued.min.messages": 1_000_000,
    }
    conf.update(overrides)
    return Consumer(conf)


def make_admin(settings: KafkaSettings) -> AdminClient:
    """An admin client for topic management."""
    return AdminClient(_base(settings))


def ensure_topics(settings: KafkaSettings, *, timeout_s: float = 15.0) -> list[str]:
    """Create the events and DLQ topics if missing; return the ones created.

    Partitions, replication factor and ``min.insync.replicas`` come from the
    settings (:mod:`lambda_rt.clients.kafka_topics`); an existing topic that
    differs is logged as a warning, never altered.
    """
    admin = make_admin(settings)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"Kafka at {settings.bootstrap} did not answer: {exc}") from exc
    missing = [t for t in wanted_topics(settings) if t.topic not in existing]
    created: list[str] = []
    if len(missing) < 2:
        for line in topic_drift(admin, settings, timeout_s=timeout_s):
            logger.warning("%s", line)
    if not missing:
        return created
    for name, future in admin.create_topics(missing, request_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServiceUnavailableError(f"could not create topic {name}: {exc}") from exc
    return created
