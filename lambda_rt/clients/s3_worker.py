"""S3 access from batch workers without secrets in task arguments.

A Dask task is pickled, sent through the scheduler and kept in its task graph
(and in its logs and dashboard). So a task carries only an :class:`S3Location`
(endpoint and region, nothing secret) and the worker resolves credentials from
its *own* configuration, in this order:

1. credentials registered in this process by :func:`register_local_credentials`
   (the owner process, whose LocalCluster workers are its own threads);
2. the worker's lambda-rt settings (:func:`lambda_rt.config.load_settings`):
   ``LAMBDA_RT_S3__ACCESS_KEY`` / ``LAMBDA_RT_S3__SECRET_KEY``, a
   ``lambda-rt.toml``, or the ``credentials.json`` of the state dir named by
   ``LAMBDA_RT_STATE_DIR`` (default ``./.lambda-rt``);
3. botocore's default chain (``AWS_ACCESS_KEY_ID``, ``~/.aws/credentials``,
   ``AWS_SHARED_CREDENTIALS_FILE``, instance roles), by passing no key.

It opens no connection itself.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from lambda_rt.config import S3Settings
from lambda_rt.errors import LambdaRTError

__all__ = [
    "S3Location",
    "clear_local_credentials",
    "register_local_credentials",
    "s3_location",
    "worker_storage_options",
]

log = logging.getLogger(__name__)

_LOCAL: dict[str, tuple[str, str]] = {}
_LOCAL_GUARD = threading.Lock()


@dataclass(frozen=True)
class S3Location:
    """What a task may carry about S3: where it is, never how to log in."""

    endpoint: str
    region: str


def s3_location(settings: S3Settings) -> S3Location:
    """The secret-free part of ``settings``, safe to pickle into a task."""
    return S3Location(endpoint=settings.endpoint, region=settings.region)


def register_local_credentials(settings: S3Settings) -> None:
    """Let tasks running in *this* process (in-process workers) use ``settings``' keys."""
    if settings.access_key is None or settings.secret_key is None:
        return
    with _LOCAL_GUARD:
        _LOCAL[settings.endpoint] = (
            settings.access_key.get_secret_value(),
            settings.secret_key.get_secret_value(),
        )


def clear_local_credentials() -> None:
    """Forget every registered key (tests)."""
    with _LOCAL_GUARD:
        _LOCAL.clear()


def _own_settings_keys() -> tuple[str, str] | None:
    from lambda_rt.config import load_settings

    try:
        s3 = load_settings().s3
    except LambdaRTError as exc:
        log.warning("worker settings unreadable (%s); falling back to the AWS credential chain", exc)
        return None
    if s3.access_key is None or s3.secret_key is None:
        return None
    return s3.access_key.get_secret_value(), s3.secret_key.get_secret_value()


def worker_storage_options(location: S3Location) -> dict[str, Any]:
    """fsspec/s3fs options for ``location`` with this worker's own credentials."""
    with _LOCAL_GUARD:
        keys = _LOCAL.get(location.endpoint)
    if keys is None:
        keys = _own_settings_keys()
    options: dict[str, Any] = {
        "endpoint_url": location.endpoint,
        "client_kwargs": {"region_name": location.region},
    }
    if keys is not None:
        options["key"], options["secret"] = keys
    return options
