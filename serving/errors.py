"""Errors of the serving layer; all derive from :class:`lambda_rt.errors.LambdaRTError`."""

from __future__ import annotations

from lambda_rt.errors import LambdaRTError

__all__ = ["CoverageHoleError", "DaemonError", "InvalidQueryError", "ServingError"]


class ServingError(LambdaRTError):
    """A query could not be answered; the message says why and what to do."""


class InvalidQueryError(ServingError, ValueError):
    """A query argument is wrong (unknown metric or dimension, bad time range).

    The CLI turns it into exit code 2, the HTTP API into status 422.
    """


class CoverageHoleError(ServingError):
    """Strict mode: part of the range is covered by neither layer.

    ``holes`` lists the uncovered ``(start, end, reason)`` ranges.
    """

    def __init__(self, message: str, holes: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.holes = holes


class DaemonError(ServingError):
    """The platform daemon answered with an error or could not be reached."""
