import pytest

from reid.errors import ConfigError
from reid.gallery import FaissSearchParams


def test_knobs_must_be_positive():
    with pytest.raises(ConfigError, match="nprobe must be positive"):
        FaissSearchParams(nprobe=0)
    with pytest.raises(ConfigError, match="ef_search must be positive"):
        FaissSearchParams(ef_search=-1)


def test_unset_knobs_fall_back_to_the_defaults():
    defaults = FaissSearchParams(nprobe=8, ef_search=64)
    assert FaissSearchParams(nprobe=32).over(defaults) == FaissSearchParams(nprobe=32, ef_search=64)
    assert FaissSearchParams().over(FaissSearchParams()) == FaissSearchParams()
