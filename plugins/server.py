"""The DAW bridge server: HTTP JSON and WebSocket in front of one model.

Endpoints (see PROTOCOL.md): ``GET /health``, ``POST /generate``, ``WS /ws`` (streams notes as they are
sampled), and with ports mode ``POST /midi/trigger``. One model run at a time on the device; up to
``Limits.queue_size`` requests wait, more get 503 at once. Every failure is answered with a JSON
``{"error", "status"}`` body on a connection that stays open; the server itself never stops on a bad
request. Only loopback ``Host`` and ``Origin`` headers are served (``LoopbackOnly``). A run stops at its
deadline, when its client leaves, and when the server is told to exit (``BridgeServer``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Awaitable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from amt import __version__
from amt.errors import AmtError, GenerationError
from amt.plugins.docs import render_docs
from amt.plugins.engine import Cancelled, Engine, Limits, NoteCallback, Plan, plan_request, variation
from amt.plugins.protocol import ErrorBody, GenerateRequest, GenerateResponse, Health, RequestError
from amt.sampling.tasks import Generation

log = logging.getLogger("amt.serve")
T = TypeVar("T")


def describe_validation(errors: list[dict[str, Any]]) -> str:
    """One readable line per pydantic error: ``region.end: ...; sampling.top_p: ...``."""
    parts = []
    for error in errors:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {error.get('msg', 'invalid')}" if loc else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def parse_request(text: str | bytes) -> GenerateRequest:
    """Parse and validate a request body; ``RequestError`` 400 for bad JSON, 422 for bad values."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply", 400) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(f"malformed JSON: {error}", 400) from None
    if not isinstance(data, dict):
        raise RequestError("the request must be a JSON object", 400)
    try:
        return GenerateRequest.model_validate(data)
    except ValidationError as error:
        raise RequestError(describe_validation(error.errors()), 422) from None


class Runner:
    """Runs plans on the engine one at a time (the device is the bottleneck) behind a bounded queue."""

    def __init__(self, engine: Engine, limits: Limits):
        self.engine = engine
        self.limits = limits
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amt-model")
        self._lock = threading.Lock()
        self._cancels: set[threading.Event] = set()  # one per request queued or running
        self.stopping = threading.Event()
        self.waiting = 0
        self.running = 0
        self.served = 0
        self.failed = 0
        """Requests answered 500 (a bug) or 504 (stopped at the timeout), over HTTP or WebSocket."""

    def count_answer(self, status: int) -> None:
        """Count an error answer in ``failed`` when it is the server's failure (500, 504; not 503 busy)."""
        if status >= 500 and status != 503:
            with self._lock:
                self.failed += 1

    def _admit(self, cancel: threading.Event) -> None:
        with self._lock:
            if self.stopping.is_set():
                raise RequestError("the server is shutting down", 503)
            if self.waiting + self.running > self.limits.queue_size:
                raise RequestError(
                    f"busy: {self.waiting + self.running} requests are ahead (queue size "
                    f"{self.limits.queue_size}); retry shortly", 503
                )
            self.waiting += 1
            self._cancels.add(cancel)

    def _work(self, plan: Plan, on_note, cancel, queued_at) -> tuple[list[Generation], float, float]:
        """Run ``plan`` on the engine: its generations, the seconds they took and the seconds it waited."""
        with self._lock:
            self.waiting -= 1
            self.running += 1
        waited = time.perf_counter() - queued_at
        try:
            if self.stopping.is_set():
                raise RequestError("the server is shutting down", 503)
            if cancel.is_set():
                raise RequestError("the request was cancelled while it waited", 503)
            if waited > self.limits.timeout_seconds:
                raise RequestError("the request waited longer than the server's timeout; retry later", 503)
            deadline = time.monotonic() + self.limits.timeout_seconds
            try:
                began = time.perf_counter()
                generations = self.engine.run(plan, on_note, deadline=deadline, cancel=cancel)
                return generations, time.perf_counter() - began, waited
            except Cancelled:
                if self.stopping.is_set():
                    raise RequestError("the server is shutting down", 503) from None
                raise
            except StopIteration as error:
                # asyncio cannot carry StopIteration through a future (the request would hang forever).
                raise RuntimeError(f"StopIteration inside generation: {error}") from error
        finally:
            with self._lock:
                self.running -= 1
                self._cancels.discard(cancel)

    async def run(
        self, request: GenerateRequest, on_note: NoteCallback | None = None
    ) -> GenerateResponse:
        """Queue a request, run it, and build the response; raises ``RequestError`` (503 when busy)."""
        # Validate against the limits before queueing, so bad requests never wait for the model.
        plan = plan_request(request, self.limits)
        cancel = threading.Event()
        self._admit(cancel)
        queued_at = time.perf_counter()
        future = self._executor.submit(self._work, plan, on_note, cancel, queued_at)
        try:
            generations, seconds, waited = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.set()  # the client went away: stop sampling at the next step
            raise
        with self._lock:
            self.served += 1
        return GenerateResponse(
            task=request.task,
            region=plan.region,
            variations=[variation(plan, index, g) for index, g in enumerate(generations)],
            locked=plan.locked_ids,
            replaced=plan.replaced_ids,
            generation_seconds=round(seconds, 4),
            queue_seconds=round(waited, 4),
            model=self.engine.name,
        )

    def stop(self) -> None:
        """Shutting down: refuse new requests and stop the running and queued ones (each answered 503)."""
        with self._lock:
            self.stopping.set()
            for cancel in self._cancels:
                cancel.set()

    def close(self) -> None:
        """Stop the worker after the current run."""
        self.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)


def error_status(error: BaseException) -> tuple[int, str]:
    """The HTTP status and message for an exception raised while serving a request."""
    if isinstance(error, RequestError):
        return error.status, str(error)
    if isinstance(error, GenerationError):
        return 422, str(error)
    if isinstance(error, AmtError):
        return 400, str(error)
    log.exception("internal error", exc_info=error)
    return 500, f"internal error: {type(error).__name__}: {error}"


def _error(status: int, message: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    body = ErrorBody(error=message, status=status).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware answering 413 to HTTP bodies over ``limit`` bytes, before the app reads them."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _error(413, f"request body of {int(declared)} bytes is over the limit of "
                                f"{self.limit} bytes")(scope, receive, send)
        chunks, size = [], 0
        while True:  # read (bounded) before the app does, also catching bodies sent without a length
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                return await _error(413, f"request body is over the limit of {self.limit} bytes")(
                    scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

class Guard:
    """Outermost ASGI middleware for HTTP: an exception that escapes the app becomes a JSON 500 answer on a
    connection that stays open (left to uvicorn, it would log the error and drop the keep-alive connection),
    and every 500 or 504 answer is counted in ``/health``'s ``failed``."""

    def __init__(self, app, runner: Runner):
        self.app = app
        self.runner = runner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.runner.count_answer(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            if started:  # the answer is half sent: nothing sensible can follow it
                raise
            await _error(*error_status(error))(scope, receive, watched)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackOnly:
    """ASGI middleware refusing (403) HTTP requests and WebSockets whose ``Host`` or ``Origin`` names anything
    but this computer (or a name in ``allowed``).

    The bridge has no authentication: any web page the musician opens could otherwise drive it, through a
    DNS name rebound to 127.0.0.1 (caught by Host) or a cross-site request or WebSocket (caught by Origin).
    Clients that send neither header (DAW scripts, curl without a Host) are served. Starlette's
    TrustedHostMiddleware checks only Host and takes no address ranges, hence this small class."""

    def __init__(self, app, allowed: Iterable[str] = ()):
        self.app = app
        self.allowed = {name.lower().strip("[]") for name in allowed}

    def _refusal(self, scope) -> str | None:
        headers = dict(scope.get("headers", ()))
        for header, value in ((b"host", "//{}"), (b"origin", "{}")):
            raw = headers.get(header)
            if raw is None:
                continue
            text = raw.decode("latin-1")
            try:
                name = urlsplit(value.format(text)).hostname or ""
            except ValueError:
                name = ""
            if not (is_loopback(name) or name in self.allowed):
                return (f"{header.decode().capitalize()} {text!r} is not allowed: the bridge serves only "
                        "this computer (127.0.0.1, localhost, [::1]) and names given with `amt serve "
                        "--allow-host`")
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and (refusal := self._refusal(scope)):
            if scope["type"] == "websocket":
                # Closing before accepting makes the server answer the handshake with 403.
                return await send({"type": "websocket.close", "code": 1008, "reason": refusal[:120]})
            return await _error(403, refusal)(scope, receive, send)
        return await self.app(scope, receive, send)


async def _until_disconnected(request: Request) -> None:
    # Once the body is read, the next ASGI message of an HTTP request is the client's disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_abandoned(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` while watching the client: if it disconnects first, ``work`` is cancelled (which frees
    the model) and a 503 is raised for nobody to read."""
    job = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        abandoned = not job.done()
        if abandoned:
            job.cancel()
    if abandoned:
        raise RequestError("the client disconnected; its generation was stopped", 503)
    return job.result()


def create_app(model, *, model_name: str | None = None, limits: Limits | None = None, bridge=None,
               allowed_hosts: Iterable[str] = ()) -> FastAPI:
    """The FastAPI app serving ``model`` (a loaded ``CausalLM``). ``bridge`` is a running
    ``amt.plugins.ports.PortsBridge`` for ports mode, or None. Only loopback ``Host`` and ``Origin`` headers
    are served, plus the names in ``allowed_hosts``."""
    limits = limits or Limits()
    runner = Runner(Engine(model, model_name or type(model).__name__), limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if bridge is not None:
            loop = asyncio.get_running_loop()
            # Ports mode generates through the same queue as HTTP clients (one model run at a time).
            def generate(request: GenerateRequest) -> GenerateResponse:
                return asyncio.run_coroutine_threadsafe(runner.run(request), loop).result()

            bridge.generate = generate
        yield
        runner.close()

    app = FastAPI(
        lifespan=lifespan,
        title="amt DAW bridge",
        version=__version__,
        description="Writes notes into a DAW region with the Anticipatory Music Transformer. Positions are "
        "in quarter-note beats; see PROTOCOL.md.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: /docs is a plain page served from here
        redoc_url=None,
    )
    app.state.runner = runner
    app.state.bridge = bridge

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        for e in error.errors():
            if e.get("type") == "json_invalid":
                reason = (e.get("ctx") or {}).get("error", "cannot parse")
                return _error(400, f"malformed JSON at character {e['loc'][-1]}: {reason}")
            if tuple(e.get("loc", ())) == ("body",):  # the body as a whole: a list, a number, null, nothing
                return _error(400, "the request must be a JSON object (sent as Content-Type: "
                              "application/json)")
        return _error(422, describe_validation(list(error.errors())))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
        # FastAPI answers every body its JSON parser chokes on (other than a syntax error) with one vague
        # 400; the cause says what was wrong.
        cause, message = error.__cause__, str(error.detail)
        if isinstance(cause, RecursionError):
            message = "malformed JSON: nested too deeply"
        elif isinstance(cause, UnicodeDecodeError):
            message = f"malformed JSON: the body is not UTF-8 ({cause.reason})"
        elif isinstance(cause, ValueError):
            message = f"malformed JSON: {cause}"
        return _error(error.status_code, message)

    @app.exception_handler(AmtError)
    async def _amt_error(request: Request, error: AmtError) -> JSONResponse:
        return _error(*error_status(error))

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Liveness and load: what is running and waiting."""
        return Health(
            version=__version__, model=runner.engine.name, running=runner.running, queued=runner.waiting,
            queue_size=limits.queue_size, served=runner.served, failed=runner.failed, midi=bridge is not None,
        )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """A plain reference page built from the OpenAPI document (works offline)."""
        return HTMLResponse(render_docs(app.openapi()))

    @app.post(
        "/generate",
        response_model=GenerateResponse,
        responses={s: {"model": ErrorBody} for s in (400, 403, 413, 422, 500, 503, 504)},
    )
    async def generate(body: GenerateRequest, request: Request) -> GenerateResponse:
        """Write new notes into the request's region; one list of notes per variation. A client that
        disconnects stops its generation."""
        return await _unless_abandoned(request, runner.run(body))

    @app.post("/midi/trigger", responses={s: {"model": ErrorBody} for s in (404, 409, 415)})
    async def midi_trigger(request: Request) -> dict:
        """Ports mode: generate from the part recorded on "amt in" (same as the trigger note or CC). Needs
        ``Content-Type: application/json`` or an ``X-Amt-Trigger`` header, which a web page's form cannot
        send."""
        if bridge is None:
            raise RequestError("ports mode is off: start the server with `amt serve --midi`", 404)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json" and "x-amt-trigger" not in request.headers:
            raise RequestError("POST /midi/trigger needs `Content-Type: application/json` or an "
                               "`X-Amt-Trigger: 1` header (so that no web page can start a generation)", 415)
        return await asyncio.get_running_loop().run_in_executor(None, bridge.trigger_and_wait)

    @app.websocket("/ws")
    async def stream(websocket: WebSocket) -> None:
        """Each text message is a request; the answer is ``note`` messages as they are sampled, then one
        ``result`` (or ``error``) message. The connection stays open for further requests."""
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is None:
                    await websocket.send_json({"type": "error", **ErrorBody(
                        error="a binary frame: send each request as a text message (JSON)", status=400,
                    ).model_dump()})
                    continue
                await _serve_stream(websocket, runner, limits, message["text"])
        except WebSocketDisconnect:
            return

    # Outermost last: Guard sees every answer (and every exception), then the host check, then the size.
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    app.add_middleware(LoopbackOnly, allowed=allowed_hosts)
    app.add_middleware(Guard, runner=runner)
    return app


async def _serve_stream(websocket: WebSocket, runner: Runner, limits: Limits, text: str) -> None:
    loop = asyncio.get_running_loop()
    notes: asyncio.Queue = asyncio.Queue()

    def on_note(variation: int, note, progress: float) -> None:
        message = {"type": "note", "variation": variation, "progress": round(progress, 4),
                   "note": note.model_dump()}
        loop.call_soon_threadsafe(notes.put_nowait, message)

    job = None
    try:
        if len(text.encode()) > limits.max_body_bytes:
            raise RequestError(f"request is over the limit of {limits.max_body_bytes} bytes", 413)
        request = parse_request(text)
        job = asyncio.ensure_future(runner.run(request, on_note))
        await websocket.send_json({"type": "accepted", "queued": runner.waiting})
        while not job.done():
            getter = asyncio.ensure_future(notes.get())
            await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                await websocket.send_json(getter.result())
            else:
                getter.cancel()
        while not notes.empty():
            await websocket.send_json(notes.get_nowait())
        response = job.result()
    except Exception as error:
        if job is not None and not job.done():
            job.cancel()  # the client is gone: free the model for the others
        if isinstance(error, WebSocketDisconnect):
            raise
        status, message = error_status(error)
        runner.count_answer(status)
        await websocket.send_json({"type": "error", **ErrorBody(error=message, status=status).model_dump()})
        return
    await websocket.send_json({"type": "result", "response": response.model_dump(mode="json")})


class BridgeServer(uvicorn.Server):
    """uvicorn's server, which on SIGINT or SIGTERM also stops the generations running or waiting (each is
    answered 503), so that the server exits at once rather than after them."""

    def __init__(self, config: uvicorn.Config, runner: Runner):
        super().__init__(config)
        self.runner = runner

    def handle_exit(self, sig, frame) -> None:
        self.runner.stop()
        super().handle_exit(sig, frame)


def server_config(app: FastAPI, host: str, port: int, ws_max_size: int, log_level: str) -> uvicorn.Config:
    """uvicorn's settings for the bridge; open connections get 5 s to finish once it shuts down."""
    return uvicorn.Config(app, host=host, port=port, ws_max_size=ws_max_size, log_level=log_level,
                          lifespan="on", timeout_graceful_shutdown=5)


def serve(app: FastAPI, host: str, port: int, ws_max_size: int) -> None:
    """Serve ``app`` (from ``create_app``) in this thread until SIGINT or SIGTERM."""
    BridgeServer(server_config(app, host, port, ws_max_size, "info"), app.state.runner).run()


class BackgroundServer:
    """Serve ``app`` with uvicorn from a daemon thread: ``with BackgroundServer(app) as server: server.url``.

    For tests, benchmarks and embedding the bridge in another program; ``port=0`` picks a free port.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, ws_max_size: int = 2**21):
        self.server = BridgeServer(server_config(app, host, port, ws_max_size, "warning"), app.state.runner)
        self.thread = threading.Thread(target=self.server.run, name="amt-serve", daemon=True)
        self.url = ""

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bridge server did not start")
            time.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.runner.stop()
        self.server.should_exit = True
        self.thread.join(timeout=30)


def openapi_schema() -> dict:
    """The OpenAPI document of the bridge (what ``plugins/openapi.json`` holds)."""
    return create_app(None, model_name="MODEL").openapi()
