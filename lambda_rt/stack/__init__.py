"""The embedded stack: real S3, Kafka-protocol broker and Redis servers under a state dir."""

from lambda_rt.stack.launcher import ServiceState, down, running_stack, status, up
from lambda_rt.stack.ports import free_stack_ports

__all__ = ["ServiceState", "down", "free_stack_ports", "running_stack", "status", "up"]
