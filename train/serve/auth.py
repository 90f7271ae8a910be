"""Who may use `train serve` without a proxy in front: one login (HTTP Basic) and TLS.

Basic authentication because the page then needs no login form: the browser asks once and resends the
credentials with the page's own requests. The header is parsed here, not by `fastapi.security.HTTPBasic`:
that decodes it as ASCII, so a password with an accent (the challenge says `charset="UTF-8"`, browsers send
UTF-8) could never match. Credentials are compared as bytes in constant time, every refusal answers the
same, and nothing about them is logged. An address that sends `Login.lock_after` wrong logins within
`Login.lock_seconds` is answered 429 without a look at its credentials until the oldest of them is that old
(`Lockout`): guessing the password is then a few guesses a minute, not thousands.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import secrets
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from curate.errors import ConfigError
from curate.regular import open_regular
from train.serve import LOCK_AFTER, LOCK_SECONDS

PASSWORD_ENV = "TRAIN_SERVE_PASSWORD"  # never an option: other local users can read /proc/PID/cmdline
CHALLENGE = 'Basic realm="triage", charset="UTF-8"'
OPEN = (("GET", "/healthz"), ("HEAD", "/healthz"))  # a monitor's probe: the model's name and queue, never a photo


CLIENTS_KEPT = 10_000  # addresses whose wrong logins are remembered at most (the oldest forgotten first)


@dataclass(frozen=True)
class Login:
    user: str
    password: str = field(repr=False)
    lock_after: int = LOCK_AFTER  # 0: never locked out
    lock_seconds: float = LOCK_SECONDS

    def __post_init__(self):
        self.check_user(self.user)
        if not self.password:
            raise ConfigError(f"--login: the password is empty; set {PASSWORD_ENV} to a password")
        if isinstance(self.lock_after, bool) or not isinstance(self.lock_after, int) or self.lock_after < 0:
            raise ConfigError(f"--lock-after must be a whole number, 0 or more, not {self.lock_after!r}")

    @staticmethod
    def check_user(user: str) -> None:
        if not user or ":" in user or not user.isprintable():  # Basic authentication splits at the first ':'
            raise ConfigError("--login: give a user name without ':' or control characters")

    def accepts(self, authorization: str | None) -> bool:
        """Whether an Authorization header carries this user and password; both are always compared, so the
        time taken says nothing about which one was wrong."""
        scheme, param = get_authorization_scheme_param(authorization)
        if scheme.lower() != "basic":
            return False
        try:
            user, colon, password = base64.b64decode(param, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        same_user = secrets.compare_digest(user, self.user.encode())
        same_password = secrets.compare_digest(password, self.password.encode())
        return bool(colon) and same_user and same_password


class Lockout:
    """Wrong logins per client address in the last `seconds`; from `after` of them the address waits until the
    oldest is `seconds` old. A request without credentials (a browser's first, which fetches the challenge)
    does not count; a right login clears the address's count.

    Why hand-written: slowapi and `limits` limit requests per route and key, and cannot count only the
    refused ones nor clear a count on success; this is a dict of deques. Behind a proxy every client has the
    proxy's address: one guesser locks everyone out for the window (`--lock-after 0` turns it off)."""

    def __init__(self, after: int, seconds: float, clock=time.monotonic):
        self.after, self.seconds, self.clock = after, seconds, clock
        self.wrong: dict[str, deque[float]] = {}

    def wait(self, client: str) -> float:
        """Seconds `client` must wait before its credentials are looked at again; 0 when it need not."""
        times = self.wrong.get(client)
        if not self.after or not times:
            return 0.0
        now = self.clock()
        while times and times[0] <= now - self.seconds:
            times.popleft()
        if not times:
            del self.wrong[client]
            return 0.0
        return times[0] + self.seconds - now if len(times) >= self.after else 0.0

    def failed(self, client: str) -> None:
        if not self.after:
            return
        times = self.wrong.pop(client, None) or deque(maxlen=self.after)
        times.append(self.clock())
        self.wrong[client] = times  # last in the dict's order: the oldest-touched address is forgotten first
        if len(self.wrong) > CLIENTS_KEPT:
            del self.wrong[next(iter(self.wrong))]

    def passed(self, client: str) -> None:
        self.wrong.pop(client, None)


class BasicAuth:
    """ASGI middleware: every request but `GET` or `HEAD /healthz` needs the login, unknown paths included (a 404 or
    405 would tell a stranger which routes exist); a refusal is 401 before any upload is read, and an address
    locked out (`Lockout`) is answered 429 with Retry-After before its credentials are looked at."""

    def __init__(self, app, login: Login):
        self.app, self.login = app, login
        self.lockout = Lockout(login.lock_after, login.lock_seconds)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (scope["method"], scope["path"]) in OPEN:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        if (wait := self.lockout.wait(client)) > 0:
            seconds = math.ceil(wait)
            refusal = JSONResponse(
                {"error": f"too many wrong logins from this address: try again in {seconds} s"},
                status_code=429,
                headers={"Retry-After": str(seconds)},
            )
            await refusal(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        if self.login.accepts(authorization):
            self.lockout.passed(client)
            await self.app(scope, receive, send)
            return
        if authorization is not None:
            self.lockout.failed(client)
        refusal = JSONResponse(
            {"error": "login required: wrong or missing user name or password"},
            status_code=401,
            headers={"WWW-Authenticate": CHALLENGE},
        )
        await refusal(scope, receive, send)


def check_tls(cert: Path, key: Path) -> list[str]:
    """Load the certificate and key as uvicorn will, so a wrong file is one line naming it instead of a
    traceback from inside the server; the warnings to print (a key other users can read)."""
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            with open_regular(path) as (fh, _st):
                fh.read(1)
        except OSError as exc:
            raise ConfigError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None
    asked = []

    def no_passphrase() -> bytes:  # OpenSSL would otherwise ask on the terminal for an encrypted key
        asked.append(True)
        return b""

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=no_passphrase)
    except ssl.SSLError as exc:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=cert)
        except ssl.SSLError:
            raise ConfigError(f"--tls-cert {cert}: not a PEM certificate") from None
        if asked:
            raise ConfigError(f"--tls-key {key}: the key is encrypted; give it unencrypted (chmod 600)") from None
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"--tls-key {key}: not the private key of --tls-cert {cert}") from None
        raise ConfigError(f"--tls-key {key}: not a PEM private key") from None
    mode = os.stat(key).st_mode
    if mode & 0o044:
        return [f"--tls-key {key} can be read by other users (mode {mode & 0o777:04o}): chmod 600 it"]
    return []
