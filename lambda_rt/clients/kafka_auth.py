"""librdkafka properties for the Kafka login (SASL) from the settings.

Kept apart from the client factories so every client of the project, probes
included, logs in the same way. ``kafka.extra`` is applied after these, so a
real cluster can still set any property (TLS files, OAUTHBEARER) directly.
"""

from __future__ import annotations

from typing import Any

from lambda_rt.config import KafkaSettings

__all__ = ["client_config"]


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """``bootstrap.servers``, the SASL login when a user is set, then ``kafka.extra``."""
    conf: dict[str, Any] = {"bootstrap.servers": settings.bootstrap}
    if settings.security_protocol:
        conf["security.protocol"] = settings.security_protocol
    if settings.username:
        conf.setdefault("security.protocol", "SASL_PLAINTEXT")
        conf["sasl.mechanisms"] = settings.mechanism
        conf["sasl.username"] = settings.username
        conf["sasl.password"] = settings.password.get_secret_value() if settings.password else ""
    conf.update(settings.extra)
    return conf
