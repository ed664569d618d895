"""API keys with scopes: who may embed, search and read, write, or administer the gallery.

A key has a name (what logs and the audit trail show; the key itself is never logged) and scopes:

* ``embed``: ``POST /embed``;
* ``search``: ``POST /search`` and reading items and stats (``GET /gallery/...``);
* ``write``: adding, upserting and deleting items by id;
* ``admin``: what acts on many items at once (erasure by filter, export, retention).

``REID_API_KEY`` (or ``REID_API_KEY_FILE``) is one key, named ``default``, with every scope. ``REID_API_KEYS``
is a JSON list of ``{"name", "key" or "key_file", "scopes"}`` (``key_file``: a Docker secret). Once any key
is set, every data endpoint needs one: no or an unknown key is 401, a known key without the scope 403.
``/healthz`` and ``/readyz`` stay open for probes; ``/info`` and ``/metrics`` need a key only with
``REID_PROTECT_OPS``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Scope = Literal["embed", "search", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
DEFAULT_KEY_NAME = "default"


def read_secret_file(path: Path) -> str:
    """A secret kept in a file (a Docker or Kubernetes secret): its text without the final newline."""
    try:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read the key file {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"the key file {path} is empty")
    return text


class ApiKeySpec(BaseModel):
    """One entry of ``REID_API_KEYS``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    key: SecretStr | None = None
    key_file: Path | None = None
    scopes: list[Scope] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeySpec:
        if (self.key is None) == (self.key_file is None):
            raise ValueError(f"API key {self.name!r}: give exactly one of key and key_file")
        if self.key is not None and not self.key.get_secret_value():
            raise ValueError(f"API key {self.name!r} is empty")
        return self

    def secret(self) -> str:
        if self.key is not None:
            return self.key.get_secret_value()
        assert self.key_file is not None  # checked by _one_source
        return read_secret_file(self.key_file)


@dataclass(frozen=True)
class Credential:
    """A known key: its name, scopes and (never shown) secret."""

    name: str
    scopes: frozenset[str]
    secret: bytes = field(repr=False)


class KeyRing:
    """The keys the service accepts, compared in constant time."""

    def __init__(self, credentials: list[Credential]) -> None:
        names = [c.name for c in credentials]
        if len(set(names)) != len(names):
            raise ValueError(f"API key names must be unique, got {sorted(names)}")
        if len({c.secret for c in credentials}) != len(credentials):
            raise ValueError("two API keys have the same secret: give each its own")
        self._credentials = credentials

    @property
    def enabled(self) -> bool:
        return bool(self._credentials)

    def identify(self, offered: list[str]) -> Credential | None:
        """The credential one of the ``offered`` values is, or ``None``. Every offered value is compared
        with every key, so the time taken says nothing about which key (or how much of it) matched."""
        found = None
        for value in offered:
            candidate = value.encode()
            for credential in self._credentials:
                if hmac.compare_digest(candidate, credential.secret):
                    found = credential
        return found

    def __repr__(self) -> str:
        return f"KeyRing({[(c.name, sorted(c.scopes)) for c in self._credentials]})"


def key_ring(single: str | None, keys: list[ApiKeySpec]) -> KeyRing:
    """The ring of ``REID_API_KEY`` (every scope) and ``REID_API_KEYS``."""
    credentials = [Credential(spec.name, frozenset(spec.scopes), spec.secret().encode()) for spec in keys]
    if single is not None:
        credentials.insert(0, Credential(DEFAULT_KEY_NAME, frozenset(SCOPES), single.encode()))
    return KeyRing(credentials)
