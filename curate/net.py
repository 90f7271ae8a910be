"""Loopback networking shared by the local servers (Label Studio, `train serve`), their tests and benchmarks."""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")  # what a request to this machine names as its Host


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, bracketed IPv6 too, or a name) is this machine's loopback: only this machine
    can connect to a server listening there."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now (the operating system picks it)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]
