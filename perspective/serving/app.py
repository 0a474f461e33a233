"""
``perspective serve`` (``cli/serve.py``) is the command-line front end; this module holds the
application factory, the access log and the log file; ``uploads`` and ``batcher`` the rest.

Why it is shaped this way:

- One process, one model in memory. Concurrent requests are gathered by ``MicroBatcher`` into one
  forward pass, which on a CPU costs much less per image than one pass per request; the pass runs in
  a dedicated thread so the event loop keeps accepting and reading requests meanwhile.
- Multipart parsing, image decoding and resizing run in a small thread pool (Pillow releases the
  GIL), never on the event loop; the images wait as uint8 and are normalised a batch at a time.
- The predictions come from ``prediction.Predictor`` (its resize, ``predict_images`` and
  row building), the same path as ``infer.py``, so both give the same numbers for the same image.
- Every bad upload is a 4xx with a JSON ``detail`` and a log line with the reason; the request body
  is counted while it streams in, so an oversized upload is refused before it fills memory.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..config import ServeConfig
from ..errors import UserError
from ..evaluation.explain import Explainer, check_explainable, explain_picture
from ..models import read_checkpoint
from ..models.outputs import NOVELTY_COLUMNS, SET_COLUMN, bound_columns, set_members
from ..prediction.converted import describe_runtime
from ..prediction.predictor import Predictor
from .batcher import MicroBatcher
from .uploads import FILE_FIELD, RAW_TYPES, Upload, decode_image, parse_multipart, read_body, reject

log = logging.getLogger("perspective.serve")  # one name for the server's log lines, whichever module writes them


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


# --- logging ----------------------------------------------------------------------------------

def setup_log_file(path: str | os.PathLike, max_bytes: int = int(ServeConfig.log_max_mb * 2**20),
                   backups: int = ServeConfig.log_backups) -> RotatingFileHandler:
    """Send this toolkit's and uvicorn's logs, INFO and up, to a size-limited rotating file.

    Calling it again replaces the previous file handler instead of doubling every line.
    """
    path = Path(path)
    try:
        handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--log-file {path}: cannot write it ({exc.strerror or exc})") from None
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    handler.perspective_serve = True  # type: ignore[attr-defined] - marks ours for replacement
    for name in ("perspective", "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "perspective_serve", False)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    return handler


def _quote(text: str) -> str:
    """A log value on one line whatever the client sent (no injected newlines)."""
    return json.dumps(text, ensure_ascii=False)


# --- the application --------------------------------------------------------------------------

def model_summary(predictor: Predictor, checkpoint: Path) -> dict[str, Any]:
    """What GET /model answers: the model, its preprocessing, and what the checkpoint says about training."""
    hp = predictor.model.hparams
    names_key = "targets" if hp.task == "regression" else "classes"
    return {
        "name": checkpoint.stem,
        "checkpoint": checkpoint.name,
        "backbone": hp.backbone,
        "task": hp.task,
        names_key: predictor.model.names,
        "image_size": predictor.preprocessing.image_size,
        "preprocessing": predictor.preprocessing.to_dict(),
        "device": str(predictor.device),
        "runtime": describe_runtime(predictor.model),
        "precision": predictor.precision,
        "tta": predictor.mirror is not None,
        "interval": predictor.interval,
        "novelty": predictor.novelty_level if predictor.novelty is not None else None,
        "training_metrics": training_metrics(checkpoint, dict(hp), getattr(predictor.model, "runs_in_torch", True)),
    }


def training_metrics(checkpoint: Path, hparams: dict[str, Any], is_checkpoint: bool = True) -> dict[str, Any]:
    """Whatever the checkpoint holds about its training; a key is null when the checkpoint lacks it.

    An exported model (``is_checkpoint`` false: ONNX, OpenVINO) carries only the hyperparameters.
    """
    ckpt: dict[str, Any] = {}
    if is_checkpoint:  # lazy: reading the epoch must not load a second copy of the weights
        ckpt = read_checkpoint(checkpoint, lazy=True)
    best = None
    for state in (ckpt.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("best_model_score") is not None:
            best = {"monitor": state.get("monitor"), "value": float(state["best_model_score"])}
    return {
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "best_checkpoint_score": best,
        "train_stats": hparams.get("train_stats"),
    }


def prediction_item(predictor: Predictor, filename: str, output: torch.Tensor) -> dict[str, Any]:
    """One response item, built from ``Predictor``'s row so it matches infer.py's CSV."""
    row = predictor.row(filename, output, "")
    names = predictor.model.names
    if predictor.model.hparams.task == "regression":
        item = {"filename": filename, "scores": {n: row[n] for n in names}}
        if predictor.intervals is not None:  # conformal bounds, as infer.py's <target>_low / _high columns
            item["intervals"] = {n: [row[column] for column in bound_columns(n)] for n in names}
    else:
        item = {"filename": filename, "label": row["label"], "confidence": row["confidence"],
                "probabilities": {c: row[f"prob_{c}"] for c in names}}
        if predictor.intervals is not None:
            item["set"] = set_members(row[SET_COLUMN])
    if predictor.novelty is not None:  # as infer.py's novelty_p and novel columns
        item.update({column: row[column] for column in NOVELTY_COLUMNS})
    return item


def _log_item(request_id: str, item: dict[str, Any]) -> None:
    """One log line per answered photo; a regression line ends with its scores as JSON."""
    line = f"prediction id={request_id} file={_quote(item['filename'])}"
    if item.get("novelty_p") is not None:
        line += f" novelty_p={item['novelty_p']:.4f} novel={str(item['novel']).lower()}"
    if "scores" in item:
        line += f" scores={json.dumps({k: round(v, 4) for k, v in item['scores'].items()})}"
    else:
        line += f" label={_quote(item['label'])} confidence={item['confidence']:.4f}"
    log.info("%s", line)


class AccessLog:
    """ASGI middleware: a request id, and one log line per request once its response has gone.

    Counts the body bytes the application actually read, and takes the image count from
    ``request.state.images`` when the endpoint set it.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        request_id = uuid.uuid4().hex[:12]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        seen = {"bytes": 0, "status": 500}

        async def counting_receive():
            message = await receive()
            seen["bytes"] += len(message.get("body", b""))
            return message

        async def tagging_send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, counting_receive, tagging_send)
        finally:
            client = scope.get("client")
            log.info("request id=%s client=%s method=%s path=%s status=%d images=%d bytes=%d latency_ms=%.1f",
                     request_id, f"{client[0]}:{client[1]}" if client else "-", scope["method"],
                     _quote(scope["path"]), seen["status"], state.get("images", 0), seen["bytes"],
                     (time.perf_counter() - start) * 1000)


def predict_body(max_files: int) -> dict[str, Any]:
    """The request body of POST /predict as the OpenAPI schema states it (``--max-files`` included)."""
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {FILE_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"},
                                                "minItems": 1, "maxItems": max_files}},
                    "required": [FILE_FIELD],
                }
            },
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}}


# What each endpoint answers besides 200, as the server does it (the OpenAPI schema is the contract).
PREDICT_ERRORS = {
    400: _error("an upload that is not a readable image, over --max-pixels, or a malformed multipart body"),
    413: _error("a body over --max-upload-mb, or more files than --max-files"),
    422: _error("no image in the request"),
    503: _error("the server is busy (too many images waiting) or not ready yet; retry later"),
}
KEY_ERROR = {401: _error("missing or wrong X-API-Key (only when the server runs with --api-key)")}
HEALTH_ERRORS = {503: _error("the model is not ready yet")}
DEMO_PAGE = Path(__file__).with_name("demo.html")  # package data: one static page, no build step, no CDN
EXPLAIN_RESPONSES = {
    200: {"description": "a PNG with a panel per score (or for the predicted class)", "content": {"image/png": {}}},
    400: PREDICT_ERRORS[400], 413: PREDICT_ERRORS[413],
    422: _error("no image in the request, or more than one"),
    501: _error("the model cannot be explained here: an exported model, or the grad-cam package is missing"),
}


class Service:
    """What the endpoints share: the loaded model, its micro-batcher, the decoding and explaining threads,
    and the handlers of the requests that use them."""

    def __init__(self, predictor: Predictor, checkpoint: Path, config: ServeConfig) -> None:
        self.predictor, self.config = predictor, config
        self.summary = model_summary(predictor, checkpoint)
        self.batcher = MicroBatcher(lambda images: predictor.predict_images(torch.stack(images)),
                                    config.batch_size, config.max_wait_ms / 1000, config.max_queue)
        self.decoder = ThreadPoolExecutor(max_workers=config.decode_threads, thread_name_prefix="decode")
        self.explaining = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
        self.explainer: Explainer | None = None  # built on the first /explain
        self.demo_page = DEMO_PAGE.read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        self.batcher.start()
        summary, config = self.summary, self.config
        log.info("model %s ready (%s, %s, %d px, %s on %s); max batch %d, max wait %g ms", summary["name"],
                 summary["backbone"], summary["task"], summary["image_size"], self.predictor.precision,
                 self.predictor.device, config.batch_size, config.max_wait_ms)
        yield
        await self.batcher.stop()
        self.decoder.shutdown(wait=False, cancel_futures=True)
        self.explaining.shutdown(wait=False, cancel_futures=True)

    async def uploads_of(self, request: Request) -> list[Upload]:
        """The images of a request: multipart ``file`` parts, or the body itself with an image type."""
        content_type = request.headers.get("content-type", "")
        kind = content_type.split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            body = await read_body(request, self.config.max_upload_bytes)
            loop = asyncio.get_running_loop()
            uploads = await loop.run_in_executor(self.decoder, parse_multipart, body, content_type,
                                                 self.config.max_files)
        elif kind.startswith(RAW_TYPES):
            body = await read_body(request, self.config.max_upload_bytes)
            uploads = [Upload(request.headers.get("x-filename", "upload")[:200], body)] if body else []
        else:
            uploads = []
        if not uploads:
            raise reject(422, f"no image: send multipart/form-data with one or more '{FILE_FIELD}' parts, "
                              "or the image itself as the body with an image/* Content-Type")
        return uploads

    def _decode(self, upload: Upload):
        """The decoding of one upload, to run in the decoding threads."""
        predictor = self.predictor
        return asyncio.get_running_loop().run_in_executor(
            self.decoder, decode_image, upload, predictor.resize, self.config.max_pixels,
            predictor.preprocessing.decode_size)

    async def predict(self, request: Request):
        start = time.perf_counter()
        uploads = await self.uploads_of(request)
        request.state.images = len(uploads)
        with self.batcher.expect(len(uploads)):
            # every decode finishes before the queue slots are freed, even when one of them fails
            decoded = await asyncio.gather(*(self._decode(u) for u in uploads), return_exceptions=True)
        failed = [d for d in decoded if isinstance(d, BaseException)]
        if failed:
            raise failed[0]
        outputs = await self.batcher.predict(list(decoded))
        items = [prediction_item(self.predictor, u.filename, out) for u, out in zip(uploads, outputs)]
        for item in items:
            _log_item(request.state.request_id, item)
        latency = round((time.perf_counter() - start) * 1000, 2)
        return JSONResponse({"model": self.summary["name"], "predictions": items, "latency_ms": latency})

    def _explain_one(self, picture: torch.Tensor) -> bytes:
        if self.explainer is None:
            self.explainer = Explainer(self.predictor.source_model)  # gradients: the model in PyTorch
        return explain_picture(self.explainer, picture)

    async def explain(self, request: Request):
        try:
            check_explainable(self.predictor.source_model)
        except UserError as exc:
            raise reject(501, str(exc)) from None
        uploads = await self.uploads_of(request)
        if len(uploads) > 1:
            raise reject(422, "one image per /explain request")
        request.state.images = 1
        picture = await self._decode(uploads[0])
        png = await asyncio.get_running_loop().run_in_executor(self.explaining, self._explain_one, picture)
        return Response(png, media_type="image/png")

    async def demo(self):
        """The demo page: drop photos, see their scores as bars, intervals and saliency (it calls the API as any client)."""
        return Response(self.demo_page, media_type="text/html; charset=utf-8")

    async def health(self):
        if not self.batcher.running:
            raise reject(503, "model not ready")
        return {"status": "ok", "model": self.summary["name"], "forward_passes": self.batcher.batches,
                "images": self.batcher.images}

    async def model(self):
        return self.summary


def _add_error_handlers(app: FastAPI) -> None:
    """Every rejection and every unexpected error leaves a log line with the request's id."""

    @app.exception_handler(StarletteHTTPException)
    async def logged_http_exception(request: Request, exc: StarletteHTTPException):
        log.warning("rejected id=%s path=%s status=%d reason=%s", request.state.request_id,
                    _quote(request.url.path), exc.status_code, _quote(str(exc.detail)))
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def logged_error(request: Request, exc: Exception):
        log.exception("error id=%s path=%s", request.state.request_id, _quote(request.url.path))
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)


def _key_check(api_key: str | None) -> tuple[list[Any], dict[int, Any]]:
    """(the dependencies of a guarded endpoint, its extra documented errors) for ``--api-key``.

    Without a key nothing asks for one, and the schema declares none: a client generated from it sends
    no header, and every documented request is answered.
    """
    if api_key is None:
        return [], {}
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when the server has --api-key")

    def check_key(key: str | None = Depends(key_header)) -> None:
        if not hmac.compare_digest((key or "").encode(), api_key.encode()):
            raise reject(401, "missing or wrong X-API-Key")

    return [Depends(check_key)], KEY_ERROR


def create_app(predictor: Predictor, checkpoint: str | os.PathLike, config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI application serving ``predictor`` (already loaded: the model is loaded once).

    Endpoints: POST /predict, POST /explain, GET /health, GET /model, and the OpenAPI docs at /docs.
    """
    config = config or ServeConfig()
    service = Service(predictor, Path(checkpoint), config)
    app = FastAPI(title="perspective", version=__version__, lifespan=service.lifespan,
                  description="Perspective scores (or class labels) for uploaded car images.")
    app.add_middleware(AccessLog)
    _add_error_handlers(app)
    guarded, key_errors = _key_check(config.api_key)
    app.post("/predict", dependencies=guarded, openapi_extra={"requestBody": predict_body(config.max_files)},
             responses={**PREDICT_ERRORS, **key_errors},
             summary="Scores (or label) for one or more uploaded images")(service.predict)
    app.post("/explain", dependencies=guarded, openapi_extra={"requestBody": predict_body(1)},
             responses={**EXPLAIN_RESPONSES, **key_errors}, response_class=Response,
             summary="A PNG: Grad-CAM of each score (or of the predicted class) over the uploaded image")(service.explain)
    app.get("/", include_in_schema=False)(service.demo)
    app.get("/health", responses=HEALTH_ERRORS,
            summary="200 with the model's name when the server is ready")(service.health)
    app.get("/model", dependencies=guarded, responses=key_errors,
            summary="The model and what its checkpoint holds")(service.model)
    return app


# --- running it -------------------------------------------------------------------------------

def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port`` (port 0: any free port); UserError when it cannot be had.

    Binding here, before uvicorn starts, turns "address in use" into one clear line and lets a
    caller ask for port 0 and learn the real port from the log.
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections made before uvicorn starts accepting wait instead of being refused
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run ``app`` with uvicorn until SIGINT or SIGTERM (logging is left as the caller set it up)."""
    import uvicorn

    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if host not in LOOPBACK_HOSTS:
        log.warning("listening on %s: reachable from other machines", host)
    log.info("serving on http://%s:%d (docs at /docs)", shown, bound_port)
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=10)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the previous handler;
    # this one makes that a normal return (exit 0), as a service manager expects from a clean stop.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: log.info("stopped by SIGTERM"))
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
