"""The exception tree of lambda-rt.

Every error a caller can act on derives from :class:`LambdaRTError`, so the CLI
can print one line instead of a traceback. Subpackages subclass these where a
caller needs to tell cases apart; causes are chained with ``raise ... from``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from confluent_kafka import KafkaError

__all__ = [
    "ConfigError",
    "EngineLockedError",
    "JobRunningError",
    "KafkaClientError",
    "LambdaRTError",
    "PortInUseError",
    "ServiceBinaryMissingError",
    "ServiceStartError",
    "ServiceUnavailableError",
]


class LambdaRTError(Exception):
    """Root of every error lambda-rt raises on purpose."""


class ConfigError(LambdaRTError):
    """The settings (env, lambda-rt.toml, state dir) are invalid or inconsistent."""


class ServiceUnavailableError(LambdaRTError):
    """A service (Kafka, Redis, S3, ClickHouse) did not answer."""


class ServiceBinaryMissingError(LambdaRTError):
    """A server binary of the embedded stack is not installed."""


class ServiceStartError(LambdaRTError):
    """A server of the embedded stack did not come up; the message names its log."""


class PortInUseError(LambdaRTError):
    """A port the embedded stack wants is already taken by another process."""


class EngineLockedError(LambdaRTError):
    """The embedded ClickHouse (chDB) data directory is owned by another process."""


class KafkaClientError(LambdaRTError):
    """A Kafka client cannot go on: a fatal consumer error, a produce that failed or a full queue.

    ``error`` is the ``confluent_kafka.KafkaError`` behind it (its ``code()``
    says which case), so a caller can branch on the code, not on the text.
    """

    def __init__(self, message: str, error: KafkaError) -> None:
        super().__init__(message)
        self.error: KafkaError = error


class JobRunningError(LambdaRTError):
    """A batch job was refused because another run of the same job holds its lock.

    Overlapping runs are refused, not queued; the caller may retry once the
    running one is done. Defined here, in the foundation, because it crosses the
    HTTP boundary: the daemon answers it with 409 and ``serving.HttpClient``
    raises this same type again, so callers catch one type in or out of process.
    """

    def __init__(self, message: str, job: str = "") -> None:
        super().__init__(message)
        self.job = job
