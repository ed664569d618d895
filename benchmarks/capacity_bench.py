"""Capacity benchmark for the README's capacity guide: memory, disk and single-query latency per backend.

For N clustered unit vectors of dimension D it builds each index and measures, in this run:

* FAISS ``Flat`` (exact; what the FAISS backend uses by default), and FAISS ``IVF{nlist},PQ{m}`` (compressed
  ANN: m bytes per vector) at a few ``nprobe`` values: build time, index bytes (the serialised index,
  which is what it holds in RAM), single-query latency p50/p99 and recall@10 against exact.
* Milvus through ``open_gallery(..., backend="milvus")`` on milvus-lite (Milvus's engine in this process, on
  a local file): insert rate, the growth of this process's resident memory (read from /proc), the size
  of its files, latency (the gRPC round trip included) and recall@10. Milvus documents milvus-lite as
  meant for small galleries; its latency is not a Milvus server's.

Memory grows linearly with N for every index here, so the table also states it per million vectors.
A Milvus server keeps a loaded collection's vectors and index in its query nodes' memory, so its memory
per million follows the same arithmetic as FAISS's (printed at the end).

    python benchmarks/capacity_bench.py                 # 100k x 2048: about 10-15 min on 2 cores
    python benchmarks/capacity_bench.py --n 20000       # a quick look
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from gallery_bench import around, describe, interleaved_ms, unit_rows

from reid.gallery import GalleryItem, open_gallery

GB = 1e9
K = 10


@dataclass(frozen=True)
class Row:
    """One line of the capacity table."""

    name: str
    build_s: float
    memory_bytes: float
    disk_bytes: float
    times_ms: np.ndarray
    recall: float


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k found, per query."""
    return float(np.mean([len(np.intersect1d(f, e)) / len(e) for f, e in zip(found, exact, strict=True)]))


def faiss_rows(
    vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray, nlist: int, pq_m: int, train_n: int
) -> list[Row]:
    dim = vectors.shape[1]
    rows = []
    flat = faiss.IndexFlatIP(dim)
    start = time.perf_counter()
    flat.add(vectors)
    build = time.perf_counter() - start
    size = len(faiss.serialize_index(flat))
    times = interleaved_ms({"": lambda q: flat.search(q, K)}, queries)[""]
    rows.append(Row("FAISS Flat (exact)", build, size, size, times, 1.0))

    factory = f"IVF{nlist},PQ{pq_m}"
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    assert isinstance(ivf, faiss.IndexIVFPQ), factory
    # Polysemous training takes minutes at PQ256 and only serves Hamming filtering, unused here.
    ivf.do_polysemous_training = False  # type: ignore[attr-defined]
    start = time.perf_counter()
    index.train(vectors[:train_n])
    index.add(vectors)
    build = time.perf_counter() - start
    size = len(faiss.serialize_index(index))
    for nprobe in (8, 32):
        ivf.nprobe = nprobe
        times = interleaved_ms({"": lambda q: index.search(q, K)}, queries)[""]
        _, found = index.search(queries, K)
        rows.append(
            Row(f"FAISS {factory}, nprobe {nprobe}", build, size, size, times, recall_at_k(found, exact))
        )
    return rows


def resident_bytes() -> float:
    """This process's resident memory: milvus-lite runs inside it (no server process of its own)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def folder_bytes(path: Path) -> float:
    return float(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()))


def milvus_row(kind: str, vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray, workdir: Path) -> Row:
    folder = workdir / f"milvus-{kind}"
    folder.mkdir()
    gallery = open_gallery(str(folder / "gallery.db"), backend="milvus", index=kind, dim=vectors.shape[1])
    try:
        baseline = resident_bytes()
        start = time.perf_counter()
        for lo in range(0, len(vectors), 2000):
            batch = vectors[lo : lo + 2000]
            gallery.add([GalleryItem(vector=v, key=f"x{lo + i}") for i, v in enumerate(batch)])
        gallery.save()
        build = time.perf_counter() - start
        times = interleaved_ms({"": lambda q: gallery.search(q, K)}, queries)[""]
        found = np.array([[hit.id - 1 for hit in hits] for hits in gallery.search(queries, K)])
        memory = resident_bytes() - baseline
    finally:
        gallery.close()
    return Row(
        f"Milvus {kind} (milvus-lite)", build, memory, folder_bytes(folder), times, recall_at_k(found, exact)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="gallery vectors (default 100k)")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--queries", type=int, default=200, help="single queries timed per index")
    parser.add_argument("--nlist", type=int, default=1024, help="IVF lists")
    parser.add_argument("--pq-m", type=int, default=256, help="PQ bytes per vector (D must divide by it)")
    parser.add_argument("--train-n", type=int, default=50_000, help="IVF-PQ training sample")
    parser.add_argument("--milvus", nargs="*", default=["FLAT"], help="Milvus index kinds")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="FAISS OpenMP threads")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    # Person-like structure: many identities (clusters), a few crops each, plus queries of known identities.
    centres = unit_rows(rng.standard_normal((args.n // 8, args.dim), dtype=np.float32))
    vectors = around(centres, args.n, 1.0, rng)
    queries = around(centres, args.queries, 1.0, rng)
    exact_index = faiss.IndexFlatIP(args.dim)
    exact_index.add(vectors)
    _, exact = exact_index.search(queries, K)
    del exact_index
    print(
        f"{args.n:,} x {args.dim} clustered unit vectors, {args.queries} single queries, k={K}, "
        f"{args.threads} FAISS thread(s), {os.cpu_count()} CPUs"
    )

    rows = faiss_rows(vectors, queries, exact, args.nlist, args.pq_m, min(args.train_n, args.n))
    with tempfile.TemporaryDirectory(prefix="reid-capacity-") as tmp:
        for kind in args.milvus:
            rows.append(milvus_row(kind, vectors, queries, exact, Path(tmp)))

    per_million = 1e6 / args.n
    print(f"\n{'index':<36} {'build':>8} {'RAM':>9} {'RAM/1M':>9} {'disk/1M':>9} {'recall@10':>9}  latency")
    for row in rows:
        print(
            f"{row.name:<36} {row.build_s:7.1f}s {row.memory_bytes / GB:8.2f}G "
            f"{row.memory_bytes * per_million / GB:8.2f}G {row.disk_bytes * per_million / GB:8.2f}G "
            f"{row.recall:9.3f}  {describe(row.times_ms)}"
        )
    raw = args.dim * 4
    print(
        f"\ntheory per million: Flat {raw * 1e6 / GB:.2f} GB (D x 4 bytes); PQ{args.pq_m} "
        f"{(args.pq_m + 8) * 1e6 / GB:.2f} GB (m + 8-byte id) plus {args.nlist} x {args.dim} centroids; "
        f"HNSW(M=16) {(raw + 16 * 2 * 4) * 1e6 / GB:.2f} GB (vectors + ~2M links of 4 bytes)"
    )


if __name__ == "__main__":
    main()
