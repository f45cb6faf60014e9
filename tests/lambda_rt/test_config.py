"""Config precedence: kwargs > env > lambda-rt.toml > state dir files > defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambda_rt.config import CREDENTIALS_FILE, STACK_FILE, load_settings
from lambda_rt.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("LAMBDA_RT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def _write_state(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / STACK_FILE).write_text(
        json.dumps({"redis": {"url": "redis://127.0.0.1:1111/0"}, "kafka": {"bootstrap": "h:1"}})
    )
    (state / CREDENTIALS_FILE).write_text(json.dumps({"redis": {"password": "from-state"}}))


def test_defaults_point_at_the_embedded_stack(tmp_path: Path) -> None:
    s = load_settings(state_dir=tmp_path / "st")
    assert s.kafka.bootstrap == "127.0.0.1:29092"
    assert s.redis.url.startswith("redis://127.0.0.1:26379")
    assert s.clickhouse_dsn == f"chdb://{(tmp_path / 'st' / 'clickhouse').resolve()}"
    assert s.embedded_clickhouse
    assert s.kafka.session_timeout_ms <= 10_000


def test_precedence_env_over_file_over_state_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "st"
    _write_state(state)
    toml = tmp_path / "lambda-rt.toml"
    toml.write_text('[kafka]\nbootstrap = "from-toml:9"\npartitions = 7\n[redis]\nkey_prefix = "tomlp"\n')

    s = load_settings(state_dir=state)
    assert s.kafka.bootstrap == "from-toml:9"  # toml beats state file
    assert s.kafka.partitions == 7
    assert s.redis.url == "redis://127.0.0.1:1111/0"  # state file beats default
    assert s.redis.key_prefix == "tomlp"  # sections merge field by field
    assert s.redis.password is not None and s.redis.password.get_secret_value() == "from-state"

    monkeypatch.setenv("LAMBDA_RT_KAFKA__BOOTSTRAP", "from-env:1")
    s = load_settings(state_dir=state)
    assert s.kafka.bootstrap == "from-env:1"  # env beats toml
    assert s.kafka.partitions == 7  # untouched field still from toml

    s = load_settings(state_dir=state, kafka={"bootstrap": "from-kwargs:2"})
    assert s.kafka.bootstrap == "from-kwargs:2"


def test_state_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_RT_STATE_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().state_dir == (tmp_path / "elsewhere").resolve()


def test_settings_are_frozen_and_secrets_hidden(tmp_path: Path) -> None:
    state = tmp_path / "st"
    _write_state(state)
    s = load_settings(state_dir=state)
    with pytest.raises(Exception, match="frozen"):
        s.kafka.topic = "x"  # type: ignore[misc]
    assert "from-state" not in repr(s)
    assert "from-state" not in str(s.model_dump())


def test_bad_value_is_a_config_error_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDA_RT_KAFKA__SESSION_TIMEOUT_MS", "45000")
    with pytest.raises(ConfigError, match=r"kafka\.session_timeout_ms"):
        load_settings(state_dir=tmp_path)


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(state_dir=tmp_path, config_file=tmp_path / "nope.toml")
