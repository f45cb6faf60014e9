"""Pick free ports for a whole embedded stack (tests, benchmarks, side-by-side stacks).

SeaweedFS opens a gRPC twin at every HTTP port + 10000 and its admin server at
the master port + 1 (and its twin), so a port is only usable when all of
those are free too; this module is the one place that knows it.
"""

from __future__ import annotations

import socket

from lambda_rt.stack.services import GRPC_OFFSET

__all__ = ["free_stack_ports"]

_NAMES = ("kafka_port", "redis_port", "s3_port", "s3_volume_port", "s3_filer_port")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick(taken: set[int], width: int) -> int:
    """A free port p such that p..p+width-1 and their gRPC twins are free and untaken."""
    for _ in range(500):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        wanted = [p + d for p in range(port, port + width) for d in (0, GRPC_OFFSET)]
        if max(wanted) > 65535 or taken.intersection(wanted):
            continue
        if all(_bindable(p) for p in wanted):
            taken.update(wanted)
            return port
    raise OSError("no free port found for the embedded stack")


def free_stack_ports(extra: int = 0) -> dict[str, int]:
    """``StackSettings`` port fields, all free now; plus ``extra`` more as ``extra_<i>``."""
    taken: set[int] = set()
    ports = {"s3_master_port": _pick(taken, width=2)}  # master + its admin server
    ports.update({name: _pick(taken, width=1) for name in _NAMES})
    ports.update({f"extra_{i}": _pick(taken, width=1) for i in range(extra)})
    return ports
