"""The README is executed: every block marked ``<!-- runnable -->`` runs, in order.

The blocks run on a fresh embedded stack in a temporary state dir on free
ports (``LAMBDA_RT_*`` variables), with ``.venv/bin`` first on PATH, exactly as
a person following the README would type them after ``source
.venv/bin/activate``. ``make demo`` and ``make test`` are not marked runnable
(they are what CI runs). The ``lambda-rt.toml`` example must load into the
settings tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_rt.config import load_settings
from lambda_rt.stack import free_stack_ports

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNABLE = re.compile(r"<!-- runnable -->\s*\n```(bash|python)\n(.*?)```", re.S)
TOML = re.compile(r"```toml\n(.*?)```", re.S)


def runnable_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in RUNNABLE.finditer(README.read_text())]


def _env(state_dir: Path) -> dict[str, str]:
    ports = free_stack_ports(extra=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_RT_")}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "LAMBDA_RT_STATE_DIR": str(state_dir),
            "LAMBDA_RT_STACK__KAFKA_PORT": str(ports["kafka_port"]),
            "LAMBDA_RT_STACK__REDIS_PORT": str(ports["redis_port"]),
            "LAMBDA_RT_STACK__S3_PORT": str(ports["s3_port"]),
            "LAMBDA_RT_STACK__S3_MASTER_PORT": str(ports["s3_master_port"]),
            "LAMBDA_RT_STACK__S3_VOLUME_PORT": str(ports["s3_volume_port"]),
            "LAMBDA_RT_STACK__S3_FILER_PORT": str(ports["s3_filer_port"]),
            "LAMBDA_RT_SERVE__PORT": str(ports["extra_0"]),
            # a thread-based Dask cluster starts in a fraction of the time
            "LAMBDA_RT_DASK__PROCESSES": "false",
            "MPLBACKEND": "Agg",
        }
    )
    return env


def test_readme_has_runnable_blocks_and_not_the_make_targets() -> None:
    blocks = runnable_blocks()
    assert len(blocks) >= 4
    text = "\n".join(code for _, code in blocks)
    assert "lambda-rt up" in text and "lambda-rt down" in text and "lambda-rt demo" in text
    assert "make demo" not in text and "make test" not in text


def test_toml_example_loads(tmp_path: Path) -> None:
    (block,) = TOML.findall(README.read_text())
    path = tmp_path / "lambda-rt.toml"
    path.write_text(block)
    s = load_settings(state_dir=tmp_path, config_file=path)
    assert s.kafka.bootstrap == "broker-1:9092,broker-2:9092"
    assert s.clickhouse_dsn.startswith("https://") and not s.embedded_clickhouse
    assert s.dask.scheduler == "tcp://dask-scheduler:8786"
    assert s.s3.bucket == "lambda-rt-cold"


@pytest.mark.slow
def test_readme_walkthrough_runs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = _env(state)
    outputs: list[str] = []
    try:
        for i, (lang, code) in enumerate(runnable_blocks()):
            cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
            r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
            outputs.append(r.stdout)
            assert r.returncode == 0, (
                f"README block {i} ({lang}) failed with {r.returncode}:\n{code}\n"
                f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
            )
    finally:
        subprocess.run(["lambda-rt", "down"], env=env, cwd=tmp_path, capture_output=True, timeout=120)
    everything = "\n".join(outputs)
    assert '"coverage"' in everything  # query --format json
    assert "batch through" in everything  # the Python block
    assert (state / "demo-revenue.png").stat().st_size > 10_000  # the demo's chart
    assert "revenue per minute" in everything
