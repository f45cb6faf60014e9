"""Regenerate the gRPC stubs from the ``.proto``: ``python -m serving.grpc_api.codegen [--check]``.

The stubs (``serving/grpc_api/v1/analytics_pb2*.py`` and the ``.pyi``) are
committed, so installing lambda-rt needs no code generator; this module is how
they are made, with the ``grpcio-tools`` pinned in the ``dev`` extra. protoc
writes ``from lambda_rt.v1 import analytics_pb2`` into the service module (the
proto's own path), which would resolve to this project's ``lambda_rt``
package: the import is rewritten to a relative one. ``--check`` regenerates
into a temporary directory and exits 1 if the committed files differ (CI
runs it through ``tests/serving/test_grpc_codegen.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

__all__ = ["GENERATED", "OUT_DIR", "PROTO", "PROTO_ROOT", "generate", "stale_files"]

PACKAGE_DIR = Path(__file__).resolve().parent
PROTO_ROOT = PACKAGE_DIR / "proto"
PROTO = "lambda_rt/v1/analytics.proto"
OUT_DIR = PACKAGE_DIR / "v1"
GENERATED = ("analytics_pb2.py", "analytics_pb2.pyi", "analytics_pb2_grpc.py")
_ABSOLUTE = "from lambda_rt.v1 import analytics_pb2 as"
_RELATIVE = "from . import analytics_pb2 as"


def generate(out_dir: Path) -> list[Path]:
    """Write the three generated files into ``out_dir``; returns their paths."""
    from grpc_tools import protoc  # dev dependency: only the code generator needs it

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            PROTO,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_ROOT / PROTO}")
        written = []
        for name in GENERATED:
            text = (Path(tmp) / "lambda_rt" / "v1" / name).read_text()
            if name.endswith("_grpc.py"):
                if _ABSOLUTE not in text:
                    raise RuntimeError(f"protoc's import line changed: {_ABSOLUTE!r} not in {name}")
                text = text.replace(_ABSOLUTE, _RELATIVE)
            target = out_dir / name
            target.write_text(text)
            written.append(target)
    return written


def stale_files(committed: Path = OUT_DIR) -> list[str]:
    """The generated files whose committed copy differs from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        return [
            name
            for name in GENERATED
            if not (committed / name).exists()
            or (committed / name).read_text() != (Path(tmp) / name).read_text()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.grpc_api.codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print(f"stale gRPC stubs: {', '.join(stale)}; run python -m serving.grpc_api.codegen")
            return 1
        return 0
    for path in generate(OUT_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
