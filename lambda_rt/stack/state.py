"""The embedded stack's state dir: layout, generated credentials, endpoints.

``lambda-rt up`` writes ``credentials.json`` (mode 0600) once per state dir and
``stack.json`` with the endpoints it started; :func:`lambda_rt.config.load_settings`
reads both, so later commands need no copying of secrets or ports. This module
only reads and writes files; it starts nothing.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambda_rt.config import CREDENTIALS_FILE, STACK_FILE, Settings

__all__ = ["Credentials", "StateLayout", "ensure_credentials", "write_stack_file"]


@dataclass(frozen=True)
class StateLayout:
    """Where each part of the embedded stack keeps its files."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def s3_data(self) -> Path:
        return self.root / "s3"

    @property
    def redis_data(self) -> Path:
        return self.root / "redis"

    @property
    def clickhouse_data(self) -> Path:
        return self.root / "clickhouse"

    @property
    def s3_identities(self) -> Path:
        return self.root / "s3-identities.json"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def pid(self, service: str) -> Path:
        return self.pids / f"{service}.pid"

    def create(self) -> None:
        """Create the directories; private to the user since they hold secrets."""
        for d in (self.root, self.logs, self.pids, self.s3_data, self.redis_data):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)


@dataclass(frozen=True)
class Credentials:
    """Secrets generated for one state dir."""

    redis_password: str
    s3_access_key: str
    s3_secret_key: str

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"


def _write_private(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
    os.replace(tmp, path)


def ensure_credentials(root: Path) -> Credentials:
    """Return the state dir's credentials, generating them on first use."""
    path = root / CREDENTIALS_FILE
    if path.is_file():
        data = json.loads(path.read_text())
        return Credentials(
            redis_password=data["redis"]["password"],
            s3_access_key=data["s3"]["access_key"],
            s3_secret_key=data["s3"]["secret_key"],
        )
    creds = Credentials(
        redis_password=secrets.token_urlsafe(24),
        s3_access_key="lrt" + secrets.token_hex(8),
        s3_secret_key=secrets.token_urlsafe(30),
    )
    _write_private(
        path,
        {
            "redis": {"password": creds.redis_password},
            "s3": {"access_key": creds.s3_access_key, "secret_key": creds.s3_secret_key},
        },
    )
    return creds


def write_stack_file(settings: Settings) -> None:
    """Record the endpoints ``up`` started so later commands find them."""
    st = settings.stack
    redis: dict[str, Any] = {"url": f"redis://127.0.0.1:{st.redis_port}/0"}
    if st.redis_ha:  # clients then find the primary through the Sentinels
        redis["sentinels"] = [f"127.0.0.1:{p}" for p in st.sentinel_ports]
        redis["master_name"] = settings.redis.master_name
    payload = {
        "kafka": {"bootstrap": f"127.0.0.1:{st.kafka_port}"},
        "redis": redis,
        "s3": {"endpoint": f"http://127.0.0.1:{st.s3_port}"},
        # only what differs from the defaults: a default is the same for every version, so an
        # older lambda-rt (which refuses settings it does not know) can still read this file
        "stack": st.model_dump(exclude_defaults=True),
    }
    _write_private(settings.state_dir / STACK_FILE, payload)
