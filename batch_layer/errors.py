"""Errors of the batch layer; all derive from :class:`lambda_rt.errors.LambdaRTError`."""

from __future__ import annotations

from lambda_rt.errors import LambdaRTError

__all__ = ["BatchError", "TierVerifyError"]


class BatchError(LambdaRTError):
    """A batch job failed; the message says which step and what to do."""


class TierVerifyError(BatchError):
    """A tier copy did not match its source (row count or the checksum of whole rows).

    The source is kept; the next tier run deletes the partial copy and retries.
    """
