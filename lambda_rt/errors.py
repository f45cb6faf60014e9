"""The exception tree of lambda-rt.

Every error a caller can act on derives from :class:`LambdaRTError`, so the CLI
can print one line instead of a traceback. Subpackages subclass these where a
caller needs to tell cases apart; causes are chained with ``raise ... from``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EngineLockedError",
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
