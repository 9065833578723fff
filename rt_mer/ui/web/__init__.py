"""The web wall (`rt-mer web`): every stream as a tile, a page per stream,
an overlay for OBS. Needs the [web] extra (Starlette, uvicorn)."""
from .server import WebError, create_app, serve
from .state import WallState

__all__ = ["WallState", "WebError", "create_app", "serve"]
