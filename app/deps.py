"""Typed dependencies. All are ``async`` so FastAPI runs them on the event loop, not in its thread pool."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from app.inference import EmbeddingService
from app.security import Credential, Scope
from app.settings import Settings
from app.state import ServiceState
from reid.gallery import Actor, GalleryStore


async def get_service(request: Request) -> ServiceState:
    service: ServiceState = request.app.state.service
    return service


Service = Annotated[ServiceState, Depends(get_service)]


async def get_settings(service: Service) -> Settings:
    return service.settings


AppSettings = Annotated[Settings, Depends(get_settings)]


async def get_embedder(service: Service) -> EmbeddingService:
    return service.ready_embedder()


Embedder = Annotated[EmbeddingService, Depends(get_embedder)]


async def get_gallery(service: Service) -> GalleryStore:
    return service.ready_gallery()


Gallery = Annotated[GalleryStore, Depends(get_gallery)]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="x-api-key: <API key>")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
KeyHeader = Annotated[str | None, Security(_api_key_header)]
_NEEDS_KEY = "this endpoint needs an API key: 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


def _authenticate(service: ServiceState, request: Request, bearer: Bearer, header: KeyHeader) -> Credential:
    """The caller's key (401 without a known one); its name goes on ``request.state.key_name``."""
    offered = [value for value in (bearer.credentials if bearer else None, header) if value]
    credential = service.keys.identify(offered)
    if credential is None:
        raise HTTPException(401, _NEEDS_KEY, headers={"WWW-Authenticate": 'Bearer realm="reid"'})
    request.state.key_name = credential.name
    return credential


def require(scope: Scope) -> Any:
    """A dependency that admits keys holding ``scope`` once any key is configured (403 for other keys)."""

    async def check(service: Service, request: Request, bearer: Bearer, header: KeyHeader) -> None:
        if not service.keys.enabled:
            return
        credential = _authenticate(service, request, bearer, header)
        if scope not in credential.scopes:
            raise HTTPException(
                403, f"the API key {credential.name!r} lacks the {scope!r} scope this endpoint needs"
            )

    return Depends(check)


async def _ops_access(service: Service, request: Request, bearer: Bearer, header: KeyHeader) -> None:
    if service.keys.enabled and service.settings.protect_ops:
        _authenticate(service, request, bearer, header)


async def get_caller(request: Request) -> Actor:
    """Who is calling, for the audit log: the endpoint and the key's name (the route's access dependency
    ran first and named it)."""
    path = getattr(request.scope.get("route"), "path", request.url.path)
    return Actor(via=f"{request.method} {path}", key=getattr(request.state, "key_name", None))


Caller = Annotated[Actor, Depends(get_caller)]

EmbedAccess = require("embed")
SearchAccess = require("search")
WriteAccess = require("write")
AdminAccess = require("admin")
OpsAccess = Depends(_ops_access)  # /info, /metrics: any key, with REID_PROTECT_OPS
