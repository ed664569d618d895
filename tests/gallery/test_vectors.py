import numpy as np
import pytest

from reid.errors import GalleryError, ModelMismatch
from reid.gallery.vectors import as_unit_matrix, check_fingerprint
from tests.gallery.helpers import unit_vectors


def test_unit_rows_pass_unchanged_and_drift_is_renormalised():
    x = unit_vectors(3, 8)
    np.testing.assert_array_equal(as_unit_matrix(x, 8), x)
    drifted = x * np.array([[1.0], [1.0009], [0.9995]], dtype=np.float32)
    out = as_unit_matrix(drifted.astype(np.float64), 8)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(drifted[1], x[1] * np.float32(1.0009))  # the input is untouched


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (np.ones((2, 4), dtype=np.float32), ModelMismatch, "dimension 4"),
        (np.full((1, 8), np.inf, dtype=np.float32), GalleryError, "row 0 contains NaN or infinity"),
        (unit_vectors(2, 8) * np.array([[1.0], [1.01]], dtype=np.float32), GalleryError, "row 1 has L2 norm"),
        (np.ones(8, dtype=np.float32), GalleryError, "2-d"),
        (np.ones((1, 8), dtype=np.int64), GalleryError, "floating point"),
    ],
)
def test_refusals(x, error, message):
    with pytest.raises(error, match=message):
        as_unit_matrix(x, 8)


def test_check_fingerprint():
    check_fingerprint("a", None)
    check_fingerprint("a", "a")
    with pytest.raises(ModelMismatch, match=r"'b'.*'a'"):
        check_fingerprint("a", "b")
