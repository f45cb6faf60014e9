"""Worker-side S3 credentials: resolved where the task runs, never carried by it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from pydantic import SecretStr

from lambda_rt.clients.s3_worker import (
    clear_local_credentials,
    register_local_credentials,
    s3_location,
    worker_storage_options,
)
from lambda_rt.config import S3Settings


def _settings() -> S3Settings:
    return S3Settings(
        endpoint="http://127.0.0.1:1", access_key=SecretStr("AKX"), secret_key=SecretStr("s3cr3t")
    )


def test_location_pickles_without_the_secret() -> None:
    blob = pickle.dumps(s3_location(_settings()))
    assert b"s3cr3t" not in blob and b"AKX" not in blob and b"127.0.0.1:1" in blob


def test_in_process_registration_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAMBDA_RT_STATE_DIR", str(tmp_path))
    try:
        register_local_credentials(_settings())
        opts = worker_storage_options(s3_location(_settings()))
        assert (opts["key"], opts["secret"]) == ("AKX", "s3cr3t")
    finally:
        clear_local_credentials()


def test_worker_environment_then_aws_chain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_local_credentials()
    monkeypatch.setenv("LAMBDA_RT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("LAMBDA_RT_S3__ACCESS_KEY", "WK")
    monkeypatch.setenv("LAMBDA_RT_S3__SECRET_KEY", "WS")
    opts = worker_storage_options(s3_location(_settings()))
    assert (opts["key"], opts["secret"], opts["endpoint_url"]) == ("WK", "WS", "http://127.0.0.1:1")
    monkeypatch.delenv("LAMBDA_RT_S3__ACCESS_KEY")
    monkeypatch.delenv("LAMBDA_RT_S3__SECRET_KEY")
    # nothing configured: no key at all, so botocore's chain (AWS_*, ~/.aws) decides
    assert "key" not in worker_storage_options(s3_location(_settings()))
