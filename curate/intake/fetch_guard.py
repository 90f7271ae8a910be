"""What a scrape may connect to, and for how long: a `requests` adapter for icrawler's session.

* **Where.** Every connection (image, redirect hop, result page) resolves the host once, refuses it when
  any address is loopback, private, link-local, multicast, reserved or otherwise not globally routable
  (server-side request forgery: a result or a redirect pointing at the clinic's own network), and then
  connects to exactly the address it checked, so a second DNS answer cannot swap it. The engine's own
  host is excepted (tests and mirrors run it locally); `--allow-private-hosts` lifts the rule.
  Through an HTTP(S) proxy (`HTTP_PROXY`/`HTTPS_PROXY`, minus `NO_PROXY`) the proxy connects, so the
  target's name is resolved and refused here before the request leaves; the proxy's own address is the
  steward's choice and not checked. The proxy resolves the name again itself, so a DNS answer that
  changes between the two look-ups is the one case a proxy leaves open.
* **How long.** requests' `timeout` bounds each socket read, so a server sending one byte per second
  never times out. `deadline(seconds)` bounds the whole request: when it expires, the socket is shut
  down from a timer thread, which ends the blocked read at once (for HTTPS too).

Written here because neither requests nor urllib3 offers either: urllib3 resolves inside
`create_connection` with no hook between resolution and connect, and has no total-time limit.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

_local = threading.local()
DEADLINE_FACTOR = 6  # a download or a result page gets DEADLINE_FACTOR x --timeout seconds in all


class Refused(Exception):
    """A connection the host policy does not allow; the message is the one-line reason."""


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a scrape must not connect to `ip`, or None for a public address."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class HostPolicy:
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)  # names excepted (the engine's host)
    allow_private: bool = False

    def addresses(self, host: str, port: int) -> list[tuple]:
        """getaddrinfo results for host:port, refused as a whole when one of them is not public."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if self.allow_private or host.lower().strip("[]") in self.allowed_hosts:
            return infos
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
            problem = address_problem(ip)
            if problem:
                raise Refused(
                    f"refused: {host} resolves to a {problem} address ({ip}); --allow-private-hosts to fetch it"
                )
        return infos


# --- the whole-request deadline ------------------------------------------------------------


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._conn = None
        self._lock = threading.Lock()

    def attach(self, conn) -> None:
        with self._lock:
            self._conn = conn
            if self.expired:
                _shutdown(conn)

    def fire(self) -> None:
        with self._lock:
            self.expired = True
            if self._conn is not None:
                _shutdown(self._conn)


def _shutdown(conn) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


_running: set[Deadline] = set()  # every thread's deadline now running (`end_all`)
_running_lock = threading.Lock()


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Every request this thread makes inside the block ends by `seconds` from now (or at `end_all`)."""
    d = Deadline(seconds)
    timer = threading.Timer(seconds, d.fire)
    timer.daemon = True
    previous = getattr(_local, "deadline", None)
    _local.deadline = d
    with _running_lock:
        _running.add(d)
    timer.start()
    try:
        yield d
    finally:
        timer.cancel()
        with _running_lock:
            _running.discard(d)
        _local.deadline = previous


def end_all() -> None:
    """End every request inside a deadline now, in every thread: a stopped crawl (Ctrl-C, SIGTERM) waited for
    each download thread's own deadline in turn, up to threads x (--timeout + 1) s (44 s for 4 threads)."""
    with _running_lock:
        running = list(_running)
    for d in running:
        d.fire()


def _attach_current(conn) -> None:
    d = getattr(_local, "deadline", None)
    if d is not None:
        d.attach(conn)


# --- connections that obey both ----------------------------------------------------------


class _Guarded:
    policy: HostPolicy

    def _new_conn(self) -> socket.socket:
        try:
            infos = self.policy.addresses(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for opt in self.socket_options or ():
                    sock.setsockopt(*opt)
                if self.timeout is not _DEFAULT_TIMEOUT:
                    sock.settimeout(self.timeout)
                sock.connect(sockaddr)  # the very address checked above
                return sock
            except OSError as exc:
                error = exc
                sock.close()
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    def connect(self) -> None:
        super().connect()
        _attach_current(self)

    def request(self, *args, **kwargs):
        if getattr(self, "sock", None) is not None:  # a pooled connection, reused
            _attach_current(self)
        return super().request(*args, **kwargs)


class GuardedAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools build connections that check the host policy and honour deadlines."""

    def __init__(self, policy: HostPolicy, **kwargs):
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        http = type("GuardedHTTPConnection", (_Guarded, HTTPConnection), {"policy": self.policy})
        https = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), {"policy": self.policy})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        if select_proxy(request.url, proxies or {}):  # the proxy connects: check the target before it leaves
            parts = urlsplit(request.url)
            try:
                self.policy.addresses(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
            except socket.gaierror as exc:
                raise requests.exceptions.ConnectionError(f"cannot resolve {parts.hostname}: {exc}") from exc
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)

    def __getstate__(self):  # pragma: no cover - requests pickles adapters only on copy
        state = super().__getstate__()
        state["policy"] = self.policy
        return state


def guard(session, policy: HostPolicy) -> None:
    """Route every http(s) request of `session` through the policy."""
    session.mount("http://", GuardedAdapter(policy))
    session.mount("https://", GuardedAdapter(policy))
