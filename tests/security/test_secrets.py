"""Security: credentials everywhere, private credential files, no secret in any output.

Extends tests/lambda_rt/test_launcher.py (anonymous S3 403, Redis without a
password, credentials.json 0600) rather than repeating it: a wrong S3 secret,
Redis' private config file, every log file of the state dir, the outputs of
``status``/``--help``/errors, ``repr`` of the settings, the daemon's default
bind address and its bearer token.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from lambda_rt.config import Settings, load_settings
from lambda_rt.stack.state import ensure_credentials
from tests.chaos.harness import Daemon
from tests.fixtures import stack_env


def _secrets(state_dir: Path) -> list[str]:
    creds = ensure_credentials(state_dir)
    return [creds.redis_password, creds.s3_secret_key, creds.s3_access_key]


def test_wrong_s3_secret_is_refused(stack_settings: Settings) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=stack_settings.s3.access_key.get_secret_value() if stack_settings.s3.access_key else "",
        secret="not-the-secret",
        endpoint_url=stack_settings.s3.endpoint,
        skip_instance_cache=True,
    )
    # PermissionError, not any OSError: a refused connection (ConnectionRefusedError,
    # another OSError) must not pass as "refused the secret"
    with pytest.raises(PermissionError) as info:
        fs.ls(stack_settings.s3.broker_bucket)
    cause = info.value.__cause__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code")
    assert code == "SignatureDoesNotMatch", f"expected a signature error from S3, got {cause!r}"


def test_redis_wrong_password_and_default_user_refused(stack_settings: Settings) -> None:
    client = redis.Redis.from_url(stack_settings.redis.url, password="wrong", socket_connect_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        client.ping()


def test_every_secret_file_is_private(stack_settings: Settings) -> None:
    root = stack_settings.state_dir
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for name in ("credentials.json", "stack.json", "s3-identities.json", "redis/secrets.conf"):
        path = root / name
        assert path.is_file(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{name} is {oct(path.stat().st_mode)}"


def test_each_state_dir_gets_its_own_credentials(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _secrets(tmp_path / "a"), _secrets(tmp_path / "b")
    assert not set(a) & set(b)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambda_rt", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _cli_many(calls: list[tuple[dict[str, str], list[str]]]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent CLI calls concurrently (each is mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: _cli(c[0], *c[1]), calls))


def test_no_secret_in_logs_status_help_errors_or_repr(stack_settings: Settings, tmp_path: Path) -> None:
    state = stack_settings.state_dir
    secrets = _secrets(state)
    env = stack_env(state)
    # errors too: an unreachable Redis, a bad value next to a secret
    bad = {**env, "LAMBDA_RT_REDIS__URL": "redis://127.0.0.1:1/0"}
    calls: list[tuple[dict[str, str], list[str]]] = [
        (env, ["status"]),
        (env, ["status", "--json"]),
        (env, ["--help"]),
        (env, ["query", "--help"]),
        (env, ["serve", "--help"]),
        (bad, ["query", "events"]),
        ({**env, "LAMBDA_RT_KAFKA__PARTITIONS": "zero"}, ["status"]),
    ]
    outs = _cli_many(calls)
    outputs = [out.stdout + out.stderr for out in outs]
    status_json = outs[1].stdout
    settings = load_settings(state_dir=state)
    outputs += [
        repr(settings),
        str(settings),
        repr(settings.redis),
        repr(settings.s3),
        settings.model_dump_json(),
    ]
    logs = [
        p
        for p in state.rglob("*")
        if (p.is_file() and p.suffix in (".log", ".out", ".txt")) or "log" in p.parts
    ]
    assert logs, "no log file found in the state dir"
    for p in logs:
        if p.is_file():
            outputs.append(p.read_bytes().decode(errors="replace"))
    for i, text in enumerate(outputs):
        for s in secrets[:2]:  # the access key is an identity, not a secret; checked below
            assert s not in text, f"a generated secret leaked into output #{i}: {text[:300]!r}"
    assert secrets[0] not in json.dumps(json.loads(status_json))


def test_daemon_binds_loopback_by_default_and_enforces_the_token(isolated: Any) -> None:
    assert load_settings(state_dir=isolated.settings.state_dir).serve.host == "127.0.0.1"
    token = "t0ken-" + os.urandom(8).hex()
    daemon = Daemon(
        {**isolated.env, "LAMBDA_RT_SERVE__TOKEN": token},
        isolated.settings.state_dir,
    )
    try:
        assert daemon.url.startswith("http://127.0.0.1:")
        assert httpx.get(daemon.url + "/healthz").status_code == 200
        for path in ("/status", "/metrics", "/query?metric=events"):
            assert httpx.get(daemon.url + path).status_code == 401, path
            wrong = httpx.get(daemon.url + path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and token not in wrong.text
        assert httpx.post(daemon.url + "/jobs/recompute").status_code == 401
        ok = httpx.get(daemon.url + "/status", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert ok.status_code == 200 and token not in ok.text
        out = _cli({**isolated.env, "LAMBDA_RT_SERVE__TOKEN": "wrong"}, "query", "events")
        assert out.returncode == 1 and token not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    finally:
        daemon.stop()
    assert token not in (daemon.proc.stderr.read().decode() if daemon.proc.stderr else "")


BAD_CALLS: list[tuple[list[str], dict[str, str]]] = [
    (["query", "events", "--granularity", "fortnight"], {}),
    (["query", "events", "--start", "\u00e9\u00e9-not-a-time"], {}),
    (["query", "events", "--by", "store_id,store_id"], {}),
    (["query", "x" * 5000], {}),
    (["generate", "--events", "-5"], {}),
    (["status"], {"LAMBDA_RT_SPEED__BATCH_SIZE": "0"}),
    (["status"], {"LAMBDA_RT_SERVE__PORT": "http"}),
    (["status"], {"LAMBDA_RT_KAFKA__EXTRA": "{not json"}),
]


@pytest.mark.parametrize(("args", "env"), BAD_CALLS, ids=[" ".join(a)[:40] for a, _ in BAD_CALLS])
def test_bad_parameters_and_config_are_one_line_never_a_traceback(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    out = _cli({**stack_env(tmp_path), **env}, *args)
    assert out.returncode in (1, 2), (args, out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_cli_query_through_a_fresh_daemon_with_the_token_answers(isolated: Any) -> None:
    """A fresh daemon (nothing ingested yet) answers: it once answered /query with 500."""
    token = "t0ken-" + os.urandom(8).hex()
    env = {**isolated.env, "LAMBDA_RT_SERVE__TOKEN": token}
    daemon = Daemon(env, isolated.settings.state_dir)
    try:
        out = _cli(env, "query", "events", "--format", "json")
        assert out.returncode == 0, out.stderr
    finally:
        daemon.stop()
