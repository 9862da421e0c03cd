"""`ulmfit serve`: a classifier folder behind an HTTP API (FastAPI on uvicorn), with dynamic batching.

    from ulmfit.serve import serve
    serve("models/imdb-clas", ServeSettings(port=8000, int8=True))

FastAPI + uvicorn: a maintained ASGI stack; FastAPI's pydantic models give the 422s naming the field for free.
They are imported here only when serving (the `serve` extra), so `import ulmfit` does not need them.
Modules: `model` (what is loaded: `Served`), `batcher` (dynamic batching), `app` (routes, limits), page.html.
"""

from __future__ import annotations

from ..settings import ServeSettings


def serve(folder, settings: ServeSettings | None = None):
    """Load `folder` once and serve it until SIGTERM / Ctrl-C (uvicorn lets requests in flight finish)."""
    s = settings or ServeSettings()
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        from ..errors import UlmfitError

        raise UlmfitError(f"serving needs FastAPI and uvicorn: pip install 'ulmfit[serve]' ({e})") from None
    from .model import load

    app = create_app(load(folder, s), s)
    uvicorn.run(app, host=s.host, port=s.port, log_level="warning" if s.quiet else "info", access_log=not s.quiet)
