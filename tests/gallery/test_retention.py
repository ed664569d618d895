"""Retention policies: validation, cutoffs and their stored form (sweeps: tests/gallery/test_erasure.py)."""

import pytest

from reid.errors import ConfigError
from reid.gallery import RetentionPolicy
from reid.gallery.retention import DAY, MAX_DAYS


def test_cutoff_and_stored_form():
    policy = RetentionPolicy(days=2, by="captured")
    assert policy.cutoff(10 * DAY) == 8 * DAY
    assert RetentionPolicy.from_json(policy.to_json()) == policy
    assert policy.as_dict() == {"days": 2, "by": "captured"}


@pytest.mark.parametrize(
    ("days", "by"),
    [
        (0, "inserted"),
        (-1, "inserted"),
        (float("nan"), "inserted"),
        (MAX_DAYS * 2, "inserted"),
        (float("inf"), "inserted"),
        (1, "whenever"),
    ],
)
def test_bad_policies_are_refused(days, by):
    with pytest.raises(ConfigError):
        RetentionPolicy(days=days, by=by)


def test_an_unreadable_stored_policy_is_a_clear_error():
    with pytest.raises(ConfigError, match="unreadable retention policy"):
        RetentionPolicy.from_json('{"days": 3}')
