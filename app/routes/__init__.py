"""HTTP routes, one module per concern."""

from app.routes import embed, gallery, ops, search

ROUTERS = (embed.router, search.router, gallery.router, ops.router)

__all__ = ["ROUTERS"]
