"""Errors of the speed layer (all derive from :class:`lambda_rt.errors.LambdaRTError`)."""

from __future__ import annotations

from lambda_rt.errors import LambdaRTError

__all__ = ["SpeedLayerError"]


class SpeedLayerError(LambdaRTError):
    """The speed layer cannot continue (Kafka client errors are ``lambda_rt.errors.KafkaClientError``)."""
