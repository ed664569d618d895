import json

import pytest
from pydantic import SecretStr, ValidationError

from app.security import SCOPES, ApiKeySpec, Credential, KeyRing, key_ring
from app.settings import Settings


def _who(ring: KeyRing, *offered: str) -> Credential:
    credential = ring.identify(list(offered))
    assert credential is not None
    return credential


def test_the_single_key_has_every_scope_and_named_keys_their_own(tmp_path):
    secret = tmp_path / "viewer.key"
    secret.write_text("viewer-secret\n")  # Docker secrets end in a newline
    ring = key_ring(
        "admin-secret",
        [
            ApiKeySpec(name="indexer", key=SecretStr("indexer-secret"), scopes=["embed", "write"]),
            ApiKeySpec(name="viewer", key_file=secret, scopes=["search"]),
        ],
    )
    assert _who(ring, "admin-secret").scopes == frozenset(SCOPES)
    assert _who(ring, "indexer-secret").scopes == {"embed", "write"}
    assert _who(ring, "nope", "viewer-secret").name == "viewer"
    assert ring.identify(["viewer-secre"]) is None
    assert "secret" not in repr(ring)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a", "scopes": ["search"]}, "exactly one of key and key_file"),
        ({"name": "a", "key": "k", "key_file": "/x", "scopes": ["search"]}, "exactly one"),
        ({"name": "a", "key": "k", "scopes": ["everything"]}, "scopes"),
        ({"name": "a", "key": "k", "scopes": []}, "scopes"),
        ({"name": "a b", "key": "k", "scopes": ["search"]}, "name"),
    ],
)
def test_bad_key_entries_are_refused(entry, message):
    with pytest.raises(ValidationError, match=message):
        ApiKeySpec(**entry)


def test_settings_read_keys_from_the_environment_and_files(monkeypatch, tmp_path):
    (tmp_path / "k").write_text("from-a-file\n")
    monkeypatch.setenv("REID_API_KEY_FILE", str(tmp_path / "k"))
    monkeypatch.setenv("REID_API_KEYS", '[{"name": "cam-3", "key": "cam-secret", "scopes": ["embed"]}]')
    settings = Settings()
    ring = settings.key_ring()
    assert _who(ring, "from-a-file").name == "default"
    assert _who(ring, "cam-secret").name == "cam-3"
    assert "cam-secret" not in repr(settings)
    assert "from-a-file" not in repr(settings)


def _keys(*entries):
    return json.dumps([{"name": name, "key": key, "scopes": ["search"]} for name, key in entries])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REID_API_KEY_FILE": "/nonexistent/key"}, "cannot read the key file"),
        ({"REID_API_KEY": "same", "REID_API_KEYS": _keys(("b", "same"))}, "same secret"),
        ({"REID_API_KEYS": _keys(("a", "1"), ("a", "2"))}, "unique"),
    ],
)
def test_key_mistakes_fail_when_the_settings_load(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()
