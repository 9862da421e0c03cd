"""The FastAPI app of `ulmfit serve`: POST /predict, POST /explain, GET /health, GET /info, GET / (the page).

Every error is JSON `{"error": {"status", "message", "field"?}}`:
422 bad JSON or a wrong type (naming the field), 413 a body over max_body bytes, more than max_texts texts or
a text over max_chars characters, 503 + Retry-After the queue is full, 504 no result within the timeout,
500 the model failed. No request names a file: the folders were read at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, StrictStr

from ..settings import ServeSettings
from .batcher import Batcher, QueueFull
from .model import serve_workers


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr]


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, headers: dict | None = None):
        self.status, self.message, self.field, self.headers = status, message, field, headers


def _error(status, message, field=None, headers=None):
    body: dict = {"status": status, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _field(loc) -> str:
    """('body', 'texts', 2) -> 'texts[2]'."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


class BodyLimit:
    """Pure ASGI middleware: a request body over `limit` bytes is answered 413 before the app parses it
    (by its Content-Length, or while it streams in when chunked)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = _error(413, f"the request body is over {self.limit} bytes", "body")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await too_big(scope, receive, send)
        body, more = [], True
        size = 0
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return  # the client went away: nothing to answer
            body.append(msg.get("body", b""))
            size += len(body[-1])
            if size > self.limit:
                return await too_big(scope, receive, send)
            more = msg.get("more_body", False)
        whole = {"type": "http.request", "body": b"".join(body), "more_body": False}
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return whole
            return await receive()  # after the body: a disconnect, if it comes

        return await self.app(scope, replay, send)


def create_app(served, settings: ServeSettings | None = None) -> FastAPI:
    """The app over a loaded predictor (`serve.model.Served`, or anything with its methods)."""
    s = settings or ServeSettings()
    batcher = Batcher(served.predict_proba, s.bs, s.batch_ms / 1000, s.max_queue, serve_workers(s))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()  # after uvicorn has let the requests in flight finish (graceful shutdown)

    # no /docs or /redoc: their pages load scripts from a CDN; nothing here comes from the internet
    app = FastAPI(title="ulmfit", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, limit=s.max_body)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return _error(422, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}", "body")
        where = _field(first.get("loc", ()))
        return _error(422, f"{where}: {first['msg']}", where)

    @app.exception_handler(ApiError)
    async def api_error(request, exc):
        return _error(exc.status, exc.message, exc.field, exc.headers)

    def check_chars(text, where):
        if len(text) > s.max_chars:
            raise ApiError(413, f"{where} has {len(text)} characters, more than {s.max_chars}", where)

    async def wait(coro):
        try:
            return await asyncio.wait_for(coro, s.timeout)
        except QueueFull as e:
            raise ApiError(503, f"{e}: try again shortly", headers={"Retry-After": "1"}) from None
        except TimeoutError:
            raise ApiError(504, f"no result within {s.timeout:g} s (the server is overloaded)") from None
        except Exception as e:  # the model failed: the message, not a traceback
            raise ApiError(500, f"prediction failed: {type(e).__name__}: {e}") from None

    @app.post("/predict")
    async def predict(req: PredictRequest):
        if len(req.texts) > s.max_texts:
            raise ApiError(413, f"{len(req.texts)} texts in one request, more than {s.max_texts}", "texts")
        for i, t in enumerate(req.texts):
            check_chars(t, f"texts[{i}]")
        if not req.texts:
            return {"predictions": []}
        probs = await wait(batcher.predict(req.texts))
        return {"predictions": served.rows(probs)}

    @app.post("/explain")
    async def explain(req: ExplainRequest):
        check_chars(req.text, "text")
        return await wait(batcher.run_alone(served.explain, req.text))

    @app.get("/health")
    async def health():
        return {"status": "ok", "queued": batcher.queued, "batches": batcher.batches, "texts": batcher.batched}

    @app.get("/info")
    async def info():
        return served.info()

    page = resources.files("ulmfit.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request):
        return page

    return app
