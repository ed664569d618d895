"""Typed dependencies. All are ``async`` so FastAPI runs them on the event loop, not in its thread pool."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from app.inference import EmbeddingService
from app.settings import Settings
from app.state import ServiceState
from reid.gallery import GalleryStore


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

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <REID_API_KEY>")
_api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="x-api-key: <REID_API_KEY>")


async def require_api_key(
    service: Service,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_api_key_header)],
) -> None:
    """Guards writes when ``REID_API_KEY`` is set: either header may carry the key."""
    expected = service.settings.api_key
    if expected is None:
        return
    secret = expected.get_secret_value().encode()
    offered = [value.encode() for value in (bearer.credentials if bearer else None, header) if value]
    # compare_digest on every offered value: the time taken does not reveal how much of a key matched.
    if not any([hmac.compare_digest(value, secret) for value in offered]):
        raise HTTPException(
            401,
            "this endpoint needs the API key: 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="reid"'},
        )


WriteAccess = Depends(require_api_key)
