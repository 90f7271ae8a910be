"""Who may use `train serve` without a proxy in front: one login (HTTP Basic) and TLS.

Basic authentication because the page then needs no login form: the browser asks once and resends the
credentials with the page's own requests. The header is parsed here, not by `fastapi.security.HTTPBasic`:
that decodes it as ASCII, so a password with an accent (the challenge says `charset="UTF-8"`, browsers send
UTF-8) could never match. Credentials are compared as bytes in constant time, every refusal answers the
same, and nothing about them is logged.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from curate.errors import ConfigError
from curate.regular import open_regular

PASSWORD_ENV = "TRAIN_SERVE_PASSWORD"  # never an option: other local users can read /proc/PID/cmdline
CHALLENGE = 'Basic realm="triage", charset="UTF-8"'
OPEN = ("GET", "/healthz")  # a monitor's probe: says the model's name and queue, never a photo or an answer


@dataclass(frozen=True)
class Login:
    user: str
    password: str = field(repr=False)

    def __post_init__(self):
        self.check_user(self.user)
        if not self.password:
            raise ConfigError(f"--login: the password is empty; set {PASSWORD_ENV} to a password")

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


class BasicAuth:
    """ASGI middleware: every request but `GET /healthz` needs the login, unknown paths included (a 404 or
    405 would tell a stranger which routes exist); a refusal is 401 before any upload is read."""

    def __init__(self, app, login: Login):
        self.app, self.login = app, login

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or (scope["method"], scope["path"]) == OPEN
            or self.login.accepts(Headers(scope=scope).get("authorization"))
        ):
            await self.app(scope, receive, send)
            return
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
