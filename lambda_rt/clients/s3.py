"""S3 filesystem factory (s3fs) for the cold tier."""

from __future__ import annotations

import s3fs

from lambda_rt.config import S3Settings

__all__ = ["make_s3fs", "s3_storage_options"]


def s3_storage_options(settings: S3Settings) -> dict[str, object]:
    """fsspec storage options, also usable by pandas/pyarrow/dask readers."""
    return {
        "key": settings.access_key.get_secret_value() if settings.access_key else None,
        "secret": settings.secret_key.get_secret_value() if settings.secret_key else None,
        "endpoint_url": settings.endpoint,
        "client_kwargs": {"region_name": settings.region},
    }


def make_s3fs(settings: S3Settings) -> s3fs.S3FileSystem:
    """An s3fs filesystem; it connects lazily on first use."""
    return s3fs.S3FileSystem(skip_instance_cache=True, **s3_storage_options(settings))
