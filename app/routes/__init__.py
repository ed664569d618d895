"""HTTP routes, one module per concern."""

from app.routes import embed, gallery, ops, privacy, search

# privacy before gallery: its /gallery/erase and /gallery/retention must not be read as /gallery/{item_id}.
ROUTERS = (embed.router, search.router, privacy.router, gallery.router, ops.router)

__all__ = ["ROUTERS"]
