"""Free local ports: one (:func:`free_port`) or a whole embedded stack's (:func:`free_stack_ports`).

The one place that probes ports by binding them; every caller (the launcher,
the demo, tests, benchmarks) asks here. SeaweedFS opens a gRPC twin at every
HTTP port + 10000 and its admin server at the master port + 1 (and its twin),
so a stack port is only usable when all of those are free too.
"""

from __future__ import annotations

import socket

from lambda_rt.errors import PortInUseError
from lambda_rt.stack.services import GRPC_OFFSET

__all__ = ["free_port", "free_stack_ports", "port_is_free"]

_NAMES = ("kafka_port", "redis_port", "s3_port", "s3_volume_port", "s3_filer_port")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (we can bind it).

    ``SO_REUSEADDR`` as servers set it: a port whose last connection is in
    TIME_WAIT is free for them, so it counts as free here.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _any_free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel reports free on ``host`` now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """``preferred`` if it is free on ``host``, else any free port."""
    if preferred and port_is_free(preferred, host):
        return preferred
    try:
        return _any_free_port(host)
    except OSError as exc:
        raise PortInUseError(f"no free TCP port on {host}: {exc}") from exc


def _pick(taken: set[int], width: int) -> int:
    """A free port p such that p..p+width-1 and their gRPC twins are free and untaken."""
    for _ in range(500):
        port = _any_free_port()
        wanted = [p + d for p in range(port, port + width) for d in (0, GRPC_OFFSET)]
        if max(wanted) > 65535 or taken.intersection(wanted):
            continue
        if all(port_is_free(p) for p in wanted):
            taken.update(wanted)
            return port
    raise PortInUseError("no free run of ports found for the embedded stack")


def free_stack_ports(extra: int = 0) -> dict[str, int]:
    """``StackSettings`` port fields, all free now; plus ``extra`` more as ``extra_<i>``."""
    taken: set[int] = set()
    ports = {"s3_master_port": _pick(taken, width=2)}  # master + its admin server
    ports.update({name: _pick(taken, width=1) for name in _NAMES})
    ports.update({f"extra_{i}": _pick(taken, width=1) for i in range(extra)})
    return ports
