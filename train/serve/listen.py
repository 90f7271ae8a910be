"""Listening for `train serve`: the socket bound before the model loads, and uvicorn run on it with a
deadline for each request's headers.

Binding first makes a busy port one line in a moment, not uvicorn's `[Errno 98]` after the ~10 s model
load and a "serving … on" line that was never true.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from uvicorn.protocols.http.h11_impl import H11Protocol

from train.errors import TrainError

HEADERS_S = 20.0  # seconds a request's line and headers may take to arrive (nginx's default is 60)


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets on every address `host` names (`localhost`: ::1 and 127.0.0.1, as uvicorn
    listened), or a TrainError naming the address (in use, not this machine's)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TrainError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart reuses the port
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # its IPv4 twin is bound apart
            if socks[1:]:  # port 0: every address on the port the first was given
                address = (address[0], socks[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in socks:
            sock.close()
        why = "in use by another program; stop it or give --port" if exc.errno == 98 else exc.strerror
        raise TrainError(f"cannot listen on {host}:{port}: {why}") from None
    return socks


class HeaderDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11, what it runs without httptools) with a deadline for headers.

    uvicorn gives a request's headers no time limit: its keep-alive timer is cancelled by every byte that
    arrives, so a client sending a header byte every few seconds held a connection, and its memory, for
    good (slowloris; uvicorn has no setting for it). Here a connection whose request line and headers are
    not complete `seconds` after it opened, or after its last answer, is closed, as is one still sending a
    body its answer did not need. A body the app reads has the app's limit (`ServeSettings.upload_seconds`)."""

    seconds = HEADERS_S
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.seconds, self._late)

    def _late(self) -> None:
        # no request the app is answering: headers still arriving, or a body still trickling in after its answer
        # (a 429 is sent without reading the body)
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def with_deadline(seconds: float) -> type[HeaderDeadline]:
    """The protocol class with its own header deadline (uvicorn builds one instance per connection)."""
    return type("HeaderDeadline", (HeaderDeadline,), {"seconds": seconds})


def server(app, *, tls: tuple[Path, Path] | None = None, grace: float = 10.0, headers_s: float = HEADERS_S):
    """uvicorn's server for `app`, to `.run(sockets=bind(...))`: a stop (Ctrl-C, SIGTERM) gives answers in
    progress `grace` seconds, and request headers have `headers_s` seconds to arrive."""
    import uvicorn

    class Server(uvicorn.Server):
        def run(self, sockets=None):
            quiet = _QuietStop(self)
            logging.getLogger("uvicorn.error").addFilter(quiet)
            try:
                return super().run(sockets=sockets)
            finally:
                logging.getLogger("uvicorn.error").removeFilter(quiet)

    config = uvicorn.Config(
        app,
        http=with_deadline(headers_s),
        access_log=False,
        log_level="warning",
        # the socket's own peer is the client: from 127.0.0.1 uvicorn took X-Forwarded-For's word for it, and a
        # guesser who named another address each time was never locked out (`auth.Lockout`)
        proxy_headers=False,
        forwarded_allow_ips="",
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
        timeout_graceful_shutdown=grace,
    )
    return Server(config)


class _QuietStop(logging.Filter):
    """Drop uvicorn's tracebacks of requests a stop cut off: past the grace period its tasks are cancelled, and
    a second Ctrl-C leaves them to be cancelled as the loop ends; each logged 30 lines of "Exception in ASGI
    application … CancelledError" below the command's one line, and the app's lifespan, cancelled too, sent
    its traceback as text. Only once the server is stopping; uvicorn's own line saying how many requests it
    cut off stays."""

    def __init__(self, server):
        super().__init__()
        self.server = server

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.server.should_exit:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
            return False
        text = str(record.msg)
        return not (text.startswith("Traceback") and text.rstrip().endswith("CancelledError"))
