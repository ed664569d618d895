"""OpenAPI for the endpoints that parse their own bodies (JSON or multipart).

FastAPI documents only bodies it parses itself, so these routes describe theirs with ``openapi_extra``
and the models are added to ``components/schemas`` when the document is built.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.schemas import (
    EmbedForm,
    EmbedRequest,
    ErrorBody,
    GalleryAddRequest,
    GalleryForm,
    SearchForm,
    SearchRequest,
)

REF = "#/components/schemas/{model}"
BODY_MODELS: tuple[type[BaseModel], ...] = (
    EmbedRequest,
    EmbedForm,
    SearchRequest,
    SearchForm,
    GalleryAddRequest,
    GalleryForm,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    if model not in BODY_MODELS:
        raise ValueError(f"{model.__name__} is not in BODY_MODELS, so its schema would be missing")
    return {"$ref": REF.format(model=model.__name__)}


def request_body(json_model: type[BaseModel], form_model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that takes ``json_model`` as JSON or ``form_model`` as multipart."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref(json_model)},
                "multipart/form-data": {"schema": _ref(form_model)},
            },
        }
    }


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Document the error body for these statuses."""
    return {status: {"model": ErrorBody} for status in statuses}


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, definitions = models_json_schema([(m, "validation") for m in BODY_MODELS], ref_template=REF)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
