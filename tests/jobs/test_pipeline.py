import threading
import time

import numpy as np
import pytest

from reid.datasets import ImageRecord, scan_folder
from reid.errors import ConfigError
from reid.jobs import embed_chunk, embed_stream
from tests.helpers import calibrated_extractor


@pytest.fixture(scope="module")
def extractor():
    ex = calibrated_extractor()
    yield ex
    ex.close()


def _bad_records(folder):
    garbage = folder / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    return [
        ImageRecord(path=garbage, key="garbage"),
        ImageRecord(path=empty, key="empty"),
        ImageRecord(path=folder / "missing.jpg", key="missing"),
    ]


def test_embed_chunk_keeps_order_and_reports_bad_files(extractor, market_dir, tmp_path):
    good = scan_folder(market_dir)[:4]
    bad = _bad_records(tmp_path)
    records = [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3]]
    result = embed_chunk(records, extractor)
    assert result.keys == [r.key for r in good]
    np.testing.assert_allclose(result.vectors, extractor.embed([r.path for r in good]), atol=1e-5)
    assert [(f.record.key, f.reason.split(":")[0]) for f in result.failures] == [
        ("garbage", "invalid_image"),
        ("empty", "invalid_image"),
        ("missing", "invalid_image"),
    ]
    reasons = [f.reason for f in result.failures]
    assert reasons[1] == "invalid_image: empty file"  # no "image 3:" position prefix
    assert "cannot read" in reasons[2]


def test_all_bad_chunk_gives_empty_vectors(extractor, tmp_path):
    result = embed_chunk(_bad_records(tmp_path), extractor)
    assert result.vectors.shape == (0, extractor.dim)
    assert len(result.failures) == 3


def test_stream_chunks_in_order_and_equal_chunkwise_embedding(extractor, market_dir):
    records = scan_folder(market_dir)[:10]
    results = list(embed_stream(records, extractor, chunk_size=3))
    assert [len(r.records) for r in results] == [3, 3, 3, 1]
    assert [k for r in results for k in r.keys] == [r.key for r in records]
    streamed = np.concatenate([r.vectors for r in results])
    np.testing.assert_allclose(streamed, extractor.embed([r.path for r in records]), atol=1e-5)


class CountingDecoder:
    def __init__(self, inner):
        self.inner = inner
        self.calls = 0
        self.lock = threading.Lock()

    def prepare_many(self, images, /):
        with self.lock:
            self.calls += 1
        return self.inner.prepare_many(images)


def test_stream_decodes_ahead_of_the_model_but_boundedly(extractor, market_dir):
    records = scan_folder(market_dir)[:10]
    decoder = CountingDecoder(extractor)
    stream = embed_stream(records, extractor, chunk_size=1, decoder=decoder, prefetch=2)
    first = next(stream)
    assert first.keys == [records[0].key]
    deadline = time.monotonic() + 10
    while decoder.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # time enough to decode more, if the prefetch were unbounded
    assert decoder.calls == 3  # the chunk handed out and the two behind it
    stream.close()
    assert decoder.calls == 3  # stopping early decodes nothing more


def test_stream_rejects_bad_sizes(extractor):
    with pytest.raises(ConfigError, match="chunk_size"):
        next(embed_stream([], extractor, chunk_size=0))
