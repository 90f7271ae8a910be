"""The triage web app: one page, `POST /api/predict`, `GET /healthz`, `GET /api/card`.

Requests are decoded (JPEGs at reduced scale) and preprocessed to the network's input in the thread
pool, then wait in a bounded queue (full → 429) for one model worker that takes up to `max_batch`
waiting images at once (micro-batching: one forward pass for several clients, and one for all fold
heads), so concurrent clients share the CPU instead of fighting over it. Requests without Grad-CAM
run in onnxruntime when it is installed (`engines.py`, `--engine`), the rest in torch; either uses
`threads` cores (`train serve --threads`): on a small machine the rest decode uploads and encode
answers meanwhile; more threads than free cores make every request slower. The Grad-CAM overlay
goes back as a JPEG data URL (a PNG took ~30× longer to encode than the network's forward pass).
Uploads live in memory only; with `keep_uploads` those that decode are also written there (mode 0600,
named in the answer). Nothing about an upload is logged. A request over the queue's size is refused (429)
before its body is read (uploads in memory ≤ queue × --max-mb), and `decoding` photos at most are decoded
at once: a small PNG can decode to hundreds of MB. Every answer says not to cache it; the Host header must
be a loopback name unless the CLI listens elsewhere (`allowed_hosts`). With a `login` (`auth.py`) every
request but `GET` or `HEAD /healthz` needs it, checked after the Host and before anything else. The socket, uvicorn
and its header deadline are `listen.py`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import html
import io
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from curate.errors import ServeError
from curate.net import LOOPBACK_NAMES, host_header, is_loopback
from train.calibration import applied, unfit
from train.choices import ServeEngine
from train.ensemble import Ensemble
from train.export_model import metadata
from train.gradcam import overlay
from train.model_card import card_markdown
from train.photos import Limits, decode_sized, for_overlay, low_resolution
from train.serve.auth import BasicAuth, Login
from train.serve.engines import TorchEngine, start_engine
from train.serve.uploads import read_upload

log = logging.getLogger("train.serve")
DISCLAIMER = (
    "This is not a diagnosis. It is a triage aid for clinicians: a PCR test and a clinical examination "
    "decide whether this is mpox."
)
OVERLAY_MAX = 512  # px: the Grad-CAM overlay sent back


HEADERS = {  # every answer: photos and results are never cached, the page is never framed by another site
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
}


def hosts_for(host: str) -> tuple[str, ...] | None:
    """The Host names a server listening on `host` answers: loopback's and the address itself when it is a
    loopback one (127.0.0.2 named its own URL and was refused), any when it listens elsewhere (`--host`)."""
    if not is_loopback(host):
        return None
    name = host_header(host)  # as a request's Host is checked
    return LOOPBACK_NAMES if name in LOOPBACK_NAMES else (*LOOPBACK_NAMES, name)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def cross_site(headers) -> bool:
    """Whether a browser sent this request from another site's page. A photo upload is a "simple" request:
    any page the clinician has open could post one (filling `--keep-uploads`, spending the model), and the
    browser would send the real loopback Host and a cached login. Browsers say where a request comes from in
    `Sec-Fetch-Site` (only this page's own, or the user's own navigation, pass: another port of this machine
    is "same-site"); those that do not are judged by `Origin` against the Host. Scripts and curl send
    neither and pass. Behind a reverse proxy, which must name a loopback Host, the Host the browser used is the
    proxy's `X-Forwarded-Host` (a header no page can make a browser send to another site)."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site.lower() not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    own = {headers.get("host", "")} | {h.strip() for h in headers.get("x-forwarded-host", "").split(",")}
    return urlsplit(origin).netloc.lower() not in {h.lower() for h in own if h}


@dataclass(frozen=True)
class ServeSettings:
    limits: Limits = Limits()
    queue_size: int = 32
    max_batch: int = 8
    keep_uploads: Path | None = None
    engine: ServeEngine = ServeEngine.auto
    threads: int | None = None  # onnxruntime's intra-op threads (torch's are set process-wide by the CLI)
    # the Host names a request may carry (None: any); loopback's by default, so a web page the clinician opens
    # cannot reach the server through a DNS name it rebinds to 127.0.0.1
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_NAMES
    decoding: int = 2  # uploads decoded at once: a 115 KB PNG can decode to 270 MB, so memory is bounded by this
    upload_seconds: float = 120.0  # a body still arriving after this is answered 408 (a slow sender holds a slot)
    login: Login | None = None  # HTTP Basic on every route but GET /healthz


def busy(queue_size: int) -> ServeError:
    """The 429 of a full server (uploads in progress count: `Worker.admitted`)."""
    return ServeError(f"server busy: {queue_size} photos are uploading or waiting; try again in a moment", 429)


@dataclass
class Job:
    x: object  # one image as the engine's input (3, S, S)
    cam: bool
    future: asyncio.Future


class Worker:
    """One model worker draining the bounded queue in micro-batches."""

    def __init__(self, engine: TorchEngine, settings: ServeSettings):
        self.engine, self.settings = engine, settings
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=settings.queue_size)
        self.task: asyncio.Task | None = None
        self.served = 0
        self.admitted = 0  # requests between their upload's start and their answer: over the queue's size, 429

    def submit(self, x, cam: bool) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Job(x, cam, fut))
        except asyncio.QueueFull:
            raise busy(self.settings.queue_size) from None
        return fut

    async def run(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            while len(jobs) < self.settings.max_batch and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            for cam in (False, True):
                group = [j for j in jobs if j.cam is cam]
                if not group:
                    continue
                try:
                    results = await to_thread.run_sync(self.engine.run, [j.x for j in group], cam)
                except Exception as exc:  # a model failure answers these requests; the worker lives on
                    log.error("triage failed: %s", type(exc).__name__)
                    for j in group:
                        if not j.future.done():
                            j.future.set_exception(
                                ServeError(f"the model failed on this photo ({type(exc).__name__})", 500)
                            )
                    continue
                for j, r in zip(group, results, strict=True):
                    if not j.future.done():
                        j.future.set_result(r)
                self.served += len(group)


def _jpeg_data_url(img) -> str:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _prepare(data: bytes, limits: Limits, engine: TorchEngine, cam: bool):
    """The photo at the Grad-CAM overlay's size (`OVERLAY_MAX`; None without one), the photo's own size, and the
    engine's input; decoded upright in RGB, a JPEG at the smallest scale still ≥ the input size. Only the overlay's
    size waits in the queue: a PNG decodes whole, and 32 waiting photos of 40 MP held 4 GB."""
    image, size = decode_sized(data, limits, engine.model.preset.size)
    x = engine.prepare(image, cam)
    return (for_overlay(data, image, size, limits, OVERLAY_MAX) if cam else None), size, x


def _keep(folder: Path, data: bytes) -> str:
    """Save a decoded upload (0600, a random name, returned so the answer says which file it was)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.upload"
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return name


def create_app(model: Ensemble, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The app; builds (and checks) the engine `settings.engine` names before returning."""
    # python-multipart logs each malformed form it refuses (a line with no request or time to it) and raises; the
    # client's one-line 400 says it already
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    worker = Worker(start_engine(model, settings.engine, settings.threads), settings)
    meta = metadata(model, None if len(model.folds) > 1 else model.folds[0])
    model_warning = unfit(model.calibration)  # a run whose decisions are not fit for triage says so in every answer
    card = card_markdown(meta)
    page = (resources.files("train.serve") / "page.html").read_text(encoding="utf-8")
    page = (
        page.replace("{{CARD}}", html.escape(card))
        .replace("{{DISCLAIMER}}", html.escape(DISCLAIMER))
        .replace("{{POSITIVE}}", html.escape(model.positive or "class"))
    )

    async def lifespan(_app):
        worker.task = asyncio.create_task(worker.run())
        yield
        worker.task.cancel()

    app = FastAPI(title="mpox triage", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    if settings.login is not None:  # added first, so it runs inside the Host check and `private`'s headers
        app.add_middleware(BasicAuth, login=settings.login)
    if settings.allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed_hosts=list(settings.allowed_hosts))
    decoding = asyncio.Semaphore(settings.decoding)

    @app.middleware("http")
    async def private(request: Request, call_next):
        if request.method not in SAFE_METHODS and cross_site(request.headers):
            response = JSONResponse({"error": "refused: a request sent by another site's page"}, status_code=403)
            response.headers.update(HEADERS)
            return response
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    app.add_middleware(OneLineErrors)  # outermost: an error in the login or Host check, or in `private`, too

    @app.exception_handler(ServeError)
    async def serve_error(_request, exc: ServeError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):  # 404, 405: the API's one shape
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_request, exc: RequestValidationError):  # names the parameter, never echoes its value
        names = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
        return JSONResponse({"error": f"bad query parameter: {', '.join(names) or '?'}"}, status_code=422)

    # HEAD too: an uptime monitor's probe that asks for no body was "405", the service "down"
    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def index():
        return page

    @app.api_route("/healthz", methods=["GET", "HEAD"])
    async def healthz():
        return {
            "status": "ok",
            "model": meta["model"],
            "arch": meta["arch"],
            "dataset": meta["dataset"]["ref"],
            "engine": worker.engine.name,
            "queue": worker.queue.qsize(),
            "queue_size": settings.queue_size,
            "served": worker.served,
            "model_warning": model_warning,
        }

    @app.get("/api/card", response_class=PlainTextResponse)
    async def model_card():
        return card

    @app.post("/api/predict")
    async def predict(request: Request, gradcam: bool = True):
        # before the body is read: a busy server holds at most queue_size uploads (40 of 19 MB were held at once)
        if worker.admitted >= settings.queue_size:
            raise busy(settings.queue_size)
        worker.admitted += 1
        try:
            try:
                async with asyncio.timeout(settings.upload_seconds):
                    data = await read_upload(request.headers, request.stream(), settings.limits)
            except TimeoutError:
                raise ServeError(f"the upload took longer than {settings.upload_seconds:g} s", 408) from None
            async with decoding:
                image, size, x = await to_thread.run_sync(_prepare, data, settings.limits, worker.engine, gradcam)
            kept = await to_thread.run_sync(_keep, settings.keep_uploads, data) if settings.keep_uploads else None
            del data
            result = await worker.submit(x, gradcam)
        finally:
            worker.admitted -= 1
        warning = low_resolution("the photo", size, worker.engine.model.preset.size)
        body = {
            "positive_class": model.positive,
            "p_positive": result.p_calibrated,
            "p_calibrated": result.p_calibrated,  # the names `train predict --json` has too: its `p_positive` is
            "p_uncalibrated": result.p_positive,  # the uncalibrated one
            "calibrated": applied(model.calibration),
            "probabilities": result.probabilities,
            "threshold": model.operating_threshold,
            "decision": result.decision,
            "predicted_class": result.predicted_class,
            "decision_text": _decision_text(result.decision, model.positive),
            "disclaimer": DISCLAIMER,
            "image_size": list(size),  # the photo's, not the reduced scale it was decoded at
            "low_resolution": warning is not None,
            "warning": warning,
            "model_warning": model_warning,
            "model": meta["model"],
        }
        if kept is not None:
            body["kept_as"] = kept
        if result.cam is not None:
            body["gradcam_jpeg"] = await to_thread.run_sync(lambda: _jpeg_data_url(overlay(image, result.cam)))
        return body

    app.state.worker = worker
    app.state.model_warning = model_warning
    return app


class HostCheck(TrustedHostMiddleware):
    """Starlette's Host check, its refusal in JSON as every other error of the API is: it answers "Invalid host
    header" as plain text, and a script's `response.json()` failed on it. The check itself is Starlette's."""

    async def __call__(self, scope, receive, send):
        passed = refused = False

        async def app(s, r, se):
            nonlocal passed
            passed = True
            await self.app(s, r, se)

        async def sending(message):
            nonlocal refused
            if passed:
                await send(message)
            elif message["type"] == "http.response.start":  # Starlette's own refusal, never the app's answer
                refused = True
                error = {"error": "refused: the request names another host (Host header) than this server's"}
                await JSONResponse(error, status_code=message["status"])(scope, receive, send)
            elif not refused:
                await send(message)

        check = copy.copy(self)  # the same check, its app this request's: which of the two answered is known
        check.app = app
        await TrustedHostMiddleware.__call__(check, scope, receive, sending)


class OneLineErrors:
    """An unexpected error in a request is one log line and a JSON 500, never a traceback. Starlette's handler
    for `Exception` answers and then raises it again, and uvicorn logged its 60-line traceback (a photo with a
    malformed EXIF tag did it); caught here, below that handler, it never gets there."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def sending(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # whatever it is, the client and the log get one line
            log.error("request failed: %s", type(exc).__name__)
            if not started:
                answer = JSONResponse(
                    {"error": f"internal error ({type(exc).__name__})"}, status_code=500, headers=HEADERS
                )
                await answer(scope, receive, send)


def _decision_text(decision: str, positive: str | None) -> str:
    if decision == "refer":
        return f"Refer: above the operating point for {positive}; examine and test promptly."
    if decision == "routine":
        return f"Routine: below the operating point for {positive}; this does not rule it out."
    return f"Most likely class: {decision}"
