"""Loopback networking shared by the local servers (Label Studio, `train serve`), their tests and benchmarks."""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")  # what a request to this machine names as its Host


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, bracketed IPv6 too, or a name) is this machine's loopback: only this machine
    can connect to a server listening there. Written as the socket reads it, in any case: 127.1, 0x7f000001 and
    2130706433 (the short forms `inet_aton` takes), ::ffff:127.0.0.1, LOCALHOST; before, such a loopback counted
    as a network address, and `train serve` answered any Host (no guard against DNS rebinding)."""
    name = host_header(host).strip("[]").removesuffix(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        if not name.isprintable() or " " in name:  # inet_aton also takes "127.1 anything"
            return False
        try:
            address = ipaddress.ip_address(socket.inet_aton(name))
        except OSError:  # a name: no lookup here, so no loopback
            return False
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def host_header(host: str) -> str:
    """`host` (an address, bracketed IPv6 or not, or a name) as a request's Host header names it: lowercase, an IPv6
    address in brackets."""
    name = host.strip("[]").lower()
    return f"[{name}]" if ":" in name else name


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now (the operating system picks it)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]
