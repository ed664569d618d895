"""A loopback HTTP server for download tests, and a tiny fast-reid checkpoint to serve from it."""

from __future__ import annotations

import collections
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

from reid.models import ReIDConfig, reid_config
from tests.checkpoints.helpers import rename
from tests.helpers import random_model

# fast-reid SBS-like: IBN-a, non-local units, learnable GeM, BNNeck; the stem pool its current code uses.
SBS_LIKE = reid_config(
    "resnet18_ibn_a", backbone_overrides={"stem_pool": "ceil", "non_local": (0, 1, 1, 0)}, pooling="gem"
)
FASTREID_RENAMES = [
    ("backbone.", "backbone."),
    ("head.bnneck.", "heads.bnneck."),
    ("head.pool.p", "heads.pool_layer.p"),
]


def fastreid_checkpoint(cfg: ReIDConfig = SBS_LIKE, seed: int = 0) -> bytes:
    """A 2020 model-zoo style file: ``{"model": state}`` with ``heads.bnneck.*`` and pixel statistics."""
    state = rename(random_model(cfg, seed).state_dict(), FASTREID_RENAMES)
    state["heads.classifier.weight"] = torch.randn(751, cfg.embedding_dim)
    state["pixel_mean"] = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    state["pixel_std"] = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    out = io.BytesIO()
    torch.save({"model": state, "iteration": 1}, out)
    return out.getvalue()


class LoopbackServer:
    """Serves ``files`` under ``/files/<name>``; ``/redirect/<name>`` answers 302 to it, ``/truncated/<name>``
    announces more bytes than it sends, ``/elsewhere/<name>`` redirects to a non-loopback http URL.
    ``hold`` (when cleared) makes file requests wait; ``counts`` counts requests by path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.hold = threading.Event()
        self.hold.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.counts[self.path] += 1
                kind, _, name = self.path.strip("/").partition("/")
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                if kind == "redirect":
                    self._redirect(f"/files/{name}")
                elif kind == "elsewhere":
                    self._redirect(f"http://reid-test.invalid/files/{name}")
                elif kind in ("files", "truncated"):
                    server.hold.wait(timeout=120)
                    self.send_response(200)
                    extra = 1000 if kind == "truncated" else 0
                    self.send_header("Content-Length", str(len(data) + extra))
                    self.end_headers()
                    self.wfile.write(data)
                    self.close_connection = True
                else:
                    self.send_error(404)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, name: str, kind: str = "files") -> str:
        return f"{self.base}/{kind}/{name}"

    def requests(self, name: str, kind: str = "files") -> int:
        return self.counts[f"/{kind}/{name}"]

    @contextmanager
    def running(self) -> Iterator[LoopbackServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.hold.set()
            self._server.shutdown()
            self._server.server_close()


def write_zoo(path: Path, models: dict[str, dict[str, Any]]) -> Path:
    """A zoo file with the fast-reid families of the built-in zoo and ``models``."""
    families = {
        "tiny-sbs": {
            "source": "fast-reid",
            "input_size": [384, 128],
            "neck_feat": "after",
            "stem_pool": "pad",
        },
        "tiny-agw": {
            "source": "fast-reid",
            "input_size": [256, 128],
            "neck_feat": "after",
            "stem_pool": "pad",
        },
    }
    path.write_text(json.dumps({"format_version": 1, "families": families, "models": models}))
    return path
