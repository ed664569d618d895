import faiss
import pytest

from reid.errors import ConfigError
from reid.gallery import choose_index

GIB = 1 << 30


@pytest.mark.parametrize(
    ("n", "dim", "budget", "expected"),
    [
        (5_000, 2048, GIB, "Flat"),
        (100_000, 2048, GIB, "Flat"),  # 100k × 2048 float32 = 0.82 GB: still exact
        (100_000, 2048, GIB // 2, "IVF1024,SQ8"),  # Flat no longer fits
        (1_000_000, 2048, 16 * GIB, "IVF4096,Flat"),  # too many for an exhaustive scan
        (1_000_000, 2048, 4 * GIB, "IVF4096,SQ8"),
        (1_000_000, 2048, GIB, "IVF4096,PQ64"),
        (1_000_000, 2048, 30_000_000, "IVF4096,PQ16"),
        (1_000_000_000, 128, 100 * GIB, "IVF131072_HNSW32,PQ64"),
        (2_000, 4096, 1_000_000, "IVF32,PQ64"),  # lists shrink so each trains on ≥39 points
    ],
)
def test_choices(n, dim, budget, expected):
    assert choose_index(n, dim, budget) == expected


@pytest.mark.parametrize("n", [1_000, 300_000, 5_000_000])
def test_choices_build_with_faiss(n):
    factory = choose_index(n, 64, 200 * n)
    faiss.index_factory(64, factory, faiss.METRIC_INNER_PRODUCT)


def test_impossible_budgets():
    with pytest.raises(ConfigError, match="do not fit"):
        choose_index(1_000_000, 2048, 1_000_000)
    with pytest.raises(ConfigError):
        choose_index(0, 2048, GIB)
