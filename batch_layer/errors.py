"""Errors of the batch layer; all derive from :class:`lambda_rt.errors.LambdaRTError`."""

from __future__ import annotations

from lambda_rt.errors import LambdaRTError

__all__ = ["BatchError", "JobOverlapError", "TierVerifyError"]


class BatchError(LambdaRTError):
    """A batch job failed; the message says which step and what to do."""


class TierVerifyError(BatchError):
    """A tier copy did not match its source (row count or event_id checksum).

    The source is kept; the next tier run deletes the partial copy and retries.
    """


class JobOverlapError(BatchError):
    """A job was started while another run of the same job holds its lock."""
