"""The FAISS backend's search knobs, importable without FAISS (the CLI builds them from its flags)."""

from __future__ import annotations

from dataclasses import dataclass

from reid.errors import ConfigError
from reid.gallery.storage import SearchParams


@dataclass(frozen=True)
class FaissSearchParams(SearchParams):
    """Query-time effort of approximate indexes; ``None`` keeps the gallery's default.

    ``nprobe``: IVF lists visited per query. ``ef_search``: HNSW search breadth.
    """

    nprobe: int | None = None
    ef_search: int | None = None

    def __post_init__(self) -> None:
        for name in ("nprobe", "ef_search"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be positive, got {value}")

    def over(self, defaults: FaissSearchParams) -> FaissSearchParams:
        """These knobs, with ``defaults`` for the ones left unset."""
        return FaissSearchParams(
            nprobe=self.nprobe or defaults.nprobe, ef_search=self.ef_search or defaults.ef_search
        )
