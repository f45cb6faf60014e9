"""The command line: bad input is one line on stderr with exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambda_rt", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["generate"],  # --events missing
        ["generate", "--events", "ten"],
        ["generate", "--events", "0", "--no-kafka", "--out", "x.jsonl"],
        ["generate", "--events", "5", "--bad-fraction", "1.5", "--no-kafka", "--out", "x.jsonl"],
        ["generate", "--events", "5", "--no-kafka"],
        ["status", "--bogus"],
        ["generate", "--events", "5", "--end", "yesterday", "--no-kafka", "--out", "x.jsonl"],
        ["generate", "--events", "5", "--schema-version", "3", "--no-kafka", "--out", "x.jsonl"],
        ["query", "events", "--by", "campaign_id,store_id"],
        ["query", "unique_customers", "--by", "campaign_id", "--granularity", "minute"],
        ["query", "refunds", "--by", "campaign_id"],
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(args: list[str], tmp_path: Path) -> None:
    result = run("--state-dir", str(tmp_path), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lambda-rt: error:")
    assert "Traceback" not in result.stderr


def test_bad_config_is_one_line_exit_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lambda_rt", "--state-dir", str(tmp_path), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"LAMBDA_RT_KAFKA__PARTITIONS": "zero", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "kafka.partitions" in result.stderr


def test_generate_to_file_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        result = run(
            "--state-dir", str(tmp_path), "generate", "--events", "2000", "--seed", "7",
            "--end", "2026-11-26T10:00:00Z", "--no-kafka", "--out", str(out), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert a.read_bytes() == b.read_bytes()
    assert len(a.read_bytes().splitlines()) == 2000


def test_help_lists_the_public_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("up", "down", "status", "generate", "demo"):
        assert command in result.stdout


def test_generate_schema_versions(tmp_path: Path) -> None:
    import orjson

    for version in ("1", "2", "mixed"):
        out = tmp_path / f"v{version}.jsonl"
        result = run(
            "--state-dir", str(tmp_path), "generate", "--events", "3000", "--schema-version", version,
            "--end", "2026-11-26T10:00:00Z", "--no-kafka", "--out", str(out), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        v2 = sum(e.get("schema_version") == 2 for e in events)
        campaigns = {e["campaign_id"] for e in events if "campaign_id" in e}
        if version == "1":
            assert v2 == 0 and not campaigns
        else:
            assert (v2 == len(events)) if version == "2" else (0 < v2 < len(events))
            assert len(campaigns) >= 20
