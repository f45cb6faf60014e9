"""The embedded stack: real S3, Kafka-protocol broker and Redis servers under a state dir."""

from lambda_rt.stack.launcher import ServiceState, down, status, up

__all__ = ["ServiceState", "down", "status", "up"]
